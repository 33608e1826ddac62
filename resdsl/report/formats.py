"""The report's table formats and the extension of each one's files. Light: the command line's
help lists them without importing pandas."""

EXT = {"md": "md", "csv": "csv", "latex": "tex", "html": "html"}
FORMATS = tuple(EXT)
