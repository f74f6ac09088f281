"""One widget per view-data type, shared by every experiment."""

from app.views.curves import CurvesWidget
from app.views.factory import create_view_widget
from app.views.heatmap import HeatmapWidget
from app.views.scatter import ScatterWidget
from app.views.view_widget import ViewWidget

__all__ = ["CurvesWidget", "HeatmapWidget", "ScatterWidget", "ViewWidget", "create_view_widget"]
