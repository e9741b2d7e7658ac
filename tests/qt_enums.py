"""Unscoped enum members that QGIS's PyQt6 migration script rewrites, for this tree's classes.

``SCOPED[cls][member]`` is the enum that ``cls.member`` must be written through, so that
``cls.member`` becomes ``cls.Enum.member`` (the form PyQt6 / QGIS 4 needs, and that QGIS 3.22's
PyQt5 bindings accept too: ``tests/qgis/test_qt_enums.py`` checks every entry there).

Read by ``tests/unit/test_scoped_enums.py`` (a scan of the source text, no QGIS import).
Kept unscoped on purpose, because QGIS 3.22 has no alternative: ``QVariant.String`` and the
other ``QVariant`` types (``QgsField`` takes a ``QVariant.Type`` until QGIS 3.38, which adds
``QMetaType.Type``); not listed here.
"""

from __future__ import annotations


def _members(enum: str, names: str) -> dict[str, str]:
    return {name: enum for name in names.split()}


SCOPED: dict[str, dict[str, str]] = {
    "Qgis": _members("MessageLevel", "Info Warning Critical Success NoLevel"),
    "QgsProcessing": _members(
        "SourceType",
        "TypeMapLayer TypeVectorAnyGeometry TypeVectorPoint TypeVectorLine TypeVectorPolygon "
        "TypeRaster TypeFile TypeVector TypeMesh",
    ),
    "QgsProcessingParameterNumber": _members("Type", "Integer Double"),
    "QgsProcessingParameterFile": _members("Behavior", "File Folder"),
    "QgsProcessingParameterDefinition": _members(
        "Flag", "FlagAdvanced FlagHidden FlagOptional FlagIsModelOutput"
    ),
    "QgsProcessingAlgorithm": _members(
        "Flag",
        "FlagHideFromToolbox FlagHideFromModeler FlagSupportsBatch FlagCanCancel "
        "FlagRequiresMatchingCrs FlagNoThreading FlagDisplayNameIsLiteral "
        "FlagSupportsInPlaceEdits FlagKnownIssues FlagCustomException "
        "FlagPruneModelBranchesBasedOnAlgorithmResults "
        "FlagSkipGenericModelLogging FlagNotAvailableInStandaloneTool FlagRequiresProject "
        "FlagDeprecated",
    ),
    "QgsFeatureSink": _members("Flag", "FastInsert"),
    "QgsMapLayer": {
        **_members("LayerType", "VectorLayer RasterLayer PluginLayer MeshLayer"),
        **_members(
            "StyleCategory",
            "LayerConfiguration Symbology Symbology3D Labeling Fields Forms Actions MapTips "
            "Diagrams AttributeTable Rendering CustomProperties GeometryOptions Relations "
            "Temporal Legend Elevation AllStyleCategories",
        ),
    },
    "QgsWkbTypes": {
        **_members(
            "GeometryType",
            "PointGeometry LineGeometry PolygonGeometry UnknownGeometry NullGeometry",
        ),
        **_members(
            "Type",
            "Unknown NoGeometry Point LineString Polygon MultiPoint MultiLineString "
            "MultiPolygon GeometryCollection",
        ),
    },
    "Qt": {
        **_members(
            "AlignmentFlag",
            "AlignLeft AlignRight AlignHCenter AlignJustify AlignTop AlignBottom AlignVCenter "
            "AlignCenter AlignBaseline",
        ),
        **_members(
            "ItemDataRole",
            "DisplayRole DecorationRole EditRole ToolTipRole StatusTipRole CheckStateRole UserRole",
        ),
        **_members("CheckState", "Unchecked PartiallyChecked Checked"),
        **_members(
            "DockWidgetArea",
            "LeftDockWidgetArea RightDockWidgetArea TopDockWidgetArea BottomDockWidgetArea",
        ),
        **_members("TextFormat", "PlainText RichText AutoText"),
        **_members(
            "ShortcutContext",
            "WidgetShortcut WidgetWithChildrenShortcut WindowShortcut ApplicationShortcut",
        ),
        **_members("Orientation", "Horizontal Vertical"),
        **_members(
            "ItemFlag",
            "NoItemFlags ItemIsSelectable ItemIsEditable ItemIsDragEnabled ItemIsDropEnabled "
            "ItemIsUserCheckable ItemIsEnabled",
        ),
        **_members("CursorShape", "ArrowCursor CrossCursor WaitCursor PointingHandCursor"),
        **_members("MouseButton", "NoButton LeftButton RightButton MiddleButton"),
        **_members("KeyboardModifier", "NoModifier ShiftModifier ControlModifier AltModifier"),
        **_members("SortOrder", "AscendingOrder DescendingOrder"),
        **_members("CaseSensitivity", "CaseInsensitive CaseSensitive"),
        **_members(
            "ConnectionType",
            "AutoConnection DirectConnection QueuedConnection BlockingQueuedConnection",
        ),
        **_members("WidgetAttribute", "WA_DeleteOnClose"),
        **_members("FocusPolicy", "NoFocus TabFocus ClickFocus StrongFocus WheelFocus"),
        **_members(
            "TextInteractionFlag",
            "NoTextInteraction TextSelectableByMouse TextSelectableByKeyboard "
            "LinksAccessibleByMouse TextBrowserInteraction",
        ),
        **_members("TextElideMode", "ElideLeft ElideRight ElideMiddle ElideNone"),
        **_members("ScrollBarPolicy", "ScrollBarAsNeeded ScrollBarAlwaysOff ScrollBarAlwaysOn"),
        **_members(
            "WindowType",
            "Widget Window Dialog Tool WindowStaysOnTopHint FramelessWindowHint",
        ),
        **_members(
            "GlobalColor",
            "white black red darkRed green darkGreen blue darkBlue cyan magenta yellow "
            "gray darkGray lightGray transparent",
        ),
        **_members(
            "Key",
            "Key_Escape Key_Tab Key_Backspace Key_Return Key_Enter Key_Delete Key_Space "
            "Key_Left Key_Right Key_Up Key_Down",
        ),
    },
    "QMessageBox": {
        **_members("Icon", "NoIcon Information Warning Critical Question"),
        **_members(
            "StandardButton",
            "Ok Open Save Cancel Close Discard Apply Reset Yes No Abort Retry Ignore NoButton",
        ),
        **_members("ButtonRole", "AcceptRole RejectRole DestructiveRole ActionRole YesRole NoRole"),
    },
    "QDialogButtonBox": _members(
        "StandardButton", "Ok Open Save Cancel Close Discard Apply Reset Yes No Help NoButton"
    ),
    "QDialog": _members("DialogCode", "Accepted Rejected"),
    "QAbstractItemView": {
        **_members("SelectionBehavior", "SelectItems SelectRows SelectColumns"),
        **_members(
            "SelectionMode",
            "NoSelection SingleSelection MultiSelection ExtendedSelection ContiguousSelection",
        ),
        **_members(
            "EditTrigger",
            "NoEditTriggers CurrentChanged DoubleClicked SelectedClicked EditKeyPressed "
            "AnyKeyPressed AllEditTriggers",
        ),
    },
    "QHeaderView": _members("ResizeMode", "Interactive Fixed Stretch ResizeToContents"),
    "QSizePolicy": _members(
        "Policy", "Fixed Minimum Maximum Preferred Expanding MinimumExpanding Ignored"
    ),
    "QFrame": {
        **_members("Shape", "NoFrame Box Panel StyledPanel HLine VLine"),
        **_members("Shadow", "Plain Raised Sunken"),
    },
    "QLineEdit": _members("EchoMode", "Normal NoEcho Password PasswordEchoOnEdit"),
    "QFileDialog": _members("Option", "ShowDirsOnly DontResolveSymlinks DontConfirmOverwrite"),
    "QKeySequence": _members(
        "StandardKey", "Delete Copy Cut Paste Undo Redo SelectAll Save Open Close Find"
    ),
}
