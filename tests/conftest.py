pytest_plugins = ["aiida.tools.pytest_fixtures"]
