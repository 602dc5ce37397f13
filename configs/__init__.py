"""The shipped study configs (YAML), found with importlib.resources.files("configs")."""
