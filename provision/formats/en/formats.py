"""Date formats of the admin (``FORMAT_MODULE_PATH``): times to the second with the time zone named, as
``provision.formatting.when`` writes them, in every list column and read-only field Django renders."""

DATETIME_FORMAT = "Y-m-d H:i:s T"
SHORT_DATETIME_FORMAT = "Y-m-d H:i:s T"
DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i:s T"
