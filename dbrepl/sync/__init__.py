"""Schema, migration and data sync on pymysql alone.

This package ships inside the Lambda bundle: it must import nothing from the CLI,
the engine, typer or rich (boto3 only in `dbrepl.sync.aws`).
"""
