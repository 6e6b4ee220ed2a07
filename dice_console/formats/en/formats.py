"""One way to show dates and times on every page (tables, {{ value }} in templates): ISO order, 24 h,
with the time zone. Times a person reads at a glance also get the relative form (dice_format.when)."""

DATETIME_FORMAT = "Y-m-d H:i:s T"
DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i:s"
SHORT_DATETIME_FORMAT = "Y-m-d H:i T"
SHORT_DATE_FORMAT = "Y-m-d"
