"""A dismissable message across the top of the plots: seen at once, never blocking."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton, QWidget

#: Background, border and text colour of each kind of notice.
_COLORS = {
    "warning": ("#fff4d6", "#e0b44c", "#4a3500"),
    "error": ("#fde2e1", "#d9534f", "#5a1412"),
    "info": ("#e3f0fb", "#6aa6d6", "#0d3050"),
}


class NoticeBar(QFrame):
    """Shows one message with a close button; unlike a dialog it never takes the focus."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("notice")
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Dismiss")
        close.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        close.clicked.connect(self.hide)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 4, 4, 4)
        layout.addWidget(self.label, stretch=1)
        layout.addWidget(close, alignment=Qt.AlignmentFlag.AlignTop)
        self.hide()

    def show_message(self, text: str, kind: str = "warning") -> None:
        """Show ``text``; ``kind`` is ``warning``, ``error`` or ``info``."""
        background, border, text_color = _COLORS[kind]
        self.setStyleSheet(
            f"QFrame#notice {{ background: {background}; border: 1px solid {border};"
            f" border-radius: 4px; }} QFrame#notice QLabel {{ color: {text_color}; }}"
        )
        self.label.setText(text)
        self.show()

    def text(self) -> str:
        """Return the message shown (also while hidden)."""
        return self.label.text()
