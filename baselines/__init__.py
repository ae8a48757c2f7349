"""Built-in fsrbench methods (installed as fsrbench_baselines); they register through entry points."""
