# Task-run logs move to apps.logs (LogChunk: up to 1,000 lines or 64 KiB per row).

from django.db import migrations

CHUNK_LINES = 1000
CHUNK_BYTES = 64 * 1024


def lines_to_chunks(apps, schema_editor):
    TaskLog = apps.get_model("pipelines", "TaskLog")
    LogChunk = apps.get_model("logs", "LogChunk")
    batch, current, chunk = [], None, None

    def close():
        if chunk is not None and chunk["lines"]:
            batch.append(LogChunk(**chunk))
        if len(batch) >= 100:
            LogChunk.objects.bulk_create(batch)
            batch.clear()

    for row in TaskLog.objects.order_by("task_run_id", "number").iterator(chunk_size=2000):
        entry = [row.timestamp.timestamp(), row.stream, row.attempt, row.text]
        if (chunk is None or row.task_run_id != current or row.number != chunk["last"] + 1
                or len(chunk["lines"]) >= CHUNK_LINES or chunk["size"] >= CHUNK_BYTES):
            close()
            current = row.task_run_id
            chunk = {"task_run_id": current, "first": row.number, "last": row.number - 1, "size": 0, "lines": []}
        chunk["lines"].append(entry)
        chunk["last"] = row.number
        chunk["size"] += len(row.text) + 16
    close()
    if batch:
        LogChunk.objects.bulk_create(batch)


class Migration(migrations.Migration):

    dependencies = [
        ('pipelines', '0001_initial'),
        ('logs', '0001_initial'),
    ]

    operations = [
        migrations.RunPython(lines_to_chunks, migrations.RunPython.noop),
        migrations.DeleteModel(
            name='TaskLog',
        ),
    ]
