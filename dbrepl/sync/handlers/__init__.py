"""The two functions' handlers (`schema_sync.lambda_handler`, `data_sync.lambda_handler`).

They live in the package so the bundle is built from the installed dbrepl; the zip's
top-level `schema_sync.py` / `data_sync.py` (written by dbrepl.bundle) only re-export them,
keeping the handler names Lambda calls (dbrepl.sync.contract.HANDLERS).
"""
