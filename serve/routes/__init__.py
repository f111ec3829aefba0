"""The API's routes, one module per concern; serve/app.py includes their routers."""
