"""Where log lines live: consecutive numbered lines of a task run, kept in chunks."""

from __future__ import annotations

from django.db import models

# A chunk is closed when it holds this many lines or this many bytes of text, whichever comes
# first: a 100,000-line log is ~100 rows, and reading from line N is one index seek on (task_run, last).
CHUNK_LINES = 1000
CHUNK_BYTES = 64 * 1024


class LinesField(models.JSONField):
    """A JSONField that PostgreSQL's bulk insert binds one value per row. Django 5.2 inserts many
    rows through UNNEST of one array per column, and psycopg quotes such an array in Python,
    escaping every quote and backslash of the JSON with a regular expression: for the log's lines
    (ANSI colours are backslashes in JSON) that was 25 of the ~30 ms of inserting 50 chunks of 40
    lines, most of what storing a monitor pass costs (cProfile). A field with a placeholder keeps
    the plain VALUES form. Deconstructs as a JSONField: the column is the same."""

    def get_placeholder(self, value, compiler, connection):
        return "%s"

    def deconstruct(self):
        name, _path, args, kwargs = super().deconstruct()
        return name, "django.db.models.JSONField", args, kwargs


class LogChunk(models.Model):
    """Lines first..last of one task run's log, persisted as they arrived (secrets already masked).

    `lines` holds one [timestamp, stream, attempt, text] per line, in number order, so line
    number `first + i` is `lines[i]`. The last chunk of a log is filled up before a new one starts."""

    task_run = models.ForeignKey("pipelines.TaskRun", on_delete=models.CASCADE, related_name="log_chunks")
    first = models.PositiveIntegerField()
    last = models.PositiveIntegerField()
    size = models.PositiveIntegerField(default=0, help_text="Bytes of text in the chunk")
    lines = LinesField(default=list)
    created = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["task_run", "first"]
        constraints = [models.UniqueConstraint(fields=["task_run", "first"], name="log_chunk_first_per_task")]
        indexes = [models.Index(fields=["task_run", "last"], name="log_chunk_task_last")]

    def __str__(self):
        return f"{self.task_run_id}#{self.first}-{self.last}"

    @property
    def full(self) -> bool:
        return self.last - self.first + 1 >= CHUNK_LINES or self.size >= CHUNK_BYTES
