"""BookLogr's background tasks on wrkr: a small task API and workers, on PostgreSQL.

BookLogr (a book tracker) runs slow jobs, such as exporting a user's books to CSV, as
tasks: each has a type, a JSON payload, a status ``fresh`` -> ``started`` -> ``success``
| ``failure``, the id of the worker that took it (``nickname:UUID``), created and updated
times, and the user who created it. Here a task *is* a wrkr item, nothing is kept in
step beside it: the type is the event (``booklogr.task.<type>``, one queue per type),
the payload the event's, the creating user its tid, and the status is read from the
item's state (`STATUS`). The API and the workers share one PostgreSQL database; a new
task wakes a worker at once through wrkr's LISTEN/NOTIFY, and each worker subscribes
only the queues of the task types it was started for, on any number of machines.

    python -m examples.booklogr api --port 8000          # POST /v1/tasks, GET /v1/tasks/<id>,
                                                         # POST /v1/tasks/<id>/retry
    python -m examples.booklogr worker --nickname exporter --types csv_export

Environment: ``BOOKLOGR_DATABASE`` (a libpq URL, the local ``test`` database by
default), ``BOOKLOGR_SCHEMA`` (the application's tables), ``BOOKLOGR_WRKR_SCHEMA``
(wrkr's), ``BOOKLOGR_EXPORT_FOLDER`` (the shared folder CSV files are written to).
"""
