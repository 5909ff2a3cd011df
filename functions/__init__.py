"""The Function App's code: triggers (blueprints registered by function_app.py), validation, routing policy, records."""
