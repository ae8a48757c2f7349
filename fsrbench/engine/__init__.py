"""Old name of :mod:`fsrbench.eval` (evaluation); ``fsrbench.engine.runner`` / ``.cache`` / ``.dist`` re-export
the modules that replaced them, for plugins and scripts written against fsrbench 0.1."""
