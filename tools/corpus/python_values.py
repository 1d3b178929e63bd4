"""Python's own ways of printing an instant, a duration and an amount; run by
generate.sh. Prints `runtime<TAB>category<TAB>form<TAB>label<TAB>text` lines."""
import datetime as dt
import email.utils
import sys
import time
from zoneinfo import ZoneInfo

NY = ZoneInfo("America/New_York")
UTC = dt.timezone.utc


def instants():
    for line in open(sys.argv[1]):
        if line.startswith("#") or not line.strip():
            continue
        label, text = line.rstrip("\n").split("\t")
        yield label, dt.datetime.fromisoformat(text).astimezone(NY)


def out(category, form, label, text):
    print(f"python\t{category}\t{form}\t{label}\t{text}")


for label, at in instants():
    naive = at.replace(tzinfo=None)
    utc = at.astimezone(UTC)
    forms = {
        "str(aware)": str(at),
        "str(naive)": str(naive),
        "str(utc)": str(utc),
        "isoformat(aware)": at.isoformat(),
        "isoformat(naive)": naive.isoformat(),
        "isoformat(utc)": utc.isoformat(),
        "isoformat(sep=' ')": at.isoformat(sep=" "),
        "isoformat(timespec=milliseconds)": at.isoformat(timespec="milliseconds"),
        "isoformat(timespec=minutes)": at.isoformat(timespec="minutes"),
        "isoformat(utc,Z)": utc.isoformat().replace("+00:00", "Z"),
        "strftime(%c)": naive.strftime("%c"),
        "strftime(%x %X)": naive.strftime("%x %X"),
        "ctime()": naive.ctime(),
        "time.asctime": time.asctime(naive.timetuple()),
        "strftime(%Y-%m-%d %H:%M:%S %Z)": at.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "strftime(%Y-%m-%d %H:%M:%S %z)": at.strftime("%Y-%m-%d %H:%M:%S %z"),
        "strftime(%a, %d %b %Y %H:%M:%S %z)": at.strftime("%a, %d %b %Y %H:%M:%S %z"),
        "strftime(%d/%m/%Y %H:%M)": naive.strftime("%d/%m/%Y %H:%M"),
        "strftime(%m/%d/%Y %I:%M %p)": naive.strftime("%m/%d/%Y %I:%M %p"),
        "strftime(%B %d, %Y at %I:%M %p)": naive.strftime("%B %d, %Y at %I:%M %p"),
        "email.utils.format_datetime": email.utils.format_datetime(at),
        "email.utils.formatdate(usegmt)": email.utils.formatdate(at.timestamp(), usegmt=True),
        "date().isoformat()": at.date().isoformat(),
        "timestamp()": repr(at.timestamp()),
        "int(timestamp())": str(int(at.timestamp())),
        "timestamp()*1000": str(int(at.timestamp() * 1000)),
    }
    for form, text in forms.items():
        out("timestamp", form, label, text)

# Durations: each value printed by each formatter; the label is the seconds.
import humanize  # noqa: E402
import isodate  # noqa: E402

for seconds in [0, 1.5, 5, 30, 59, 60, 61, 125, 125.5, 599.25, 3599, 3600, 3661, 7322, 86399, 90061]:
    delta = dt.timedelta(seconds=seconds)
    label = repr(seconds)
    out("duration", "str(timedelta)", label, str(delta))
    out("duration", "isodate.duration_isoformat", label, isodate.duration_isoformat(delta))
    out("duration", "total_seconds()", label, repr(delta.total_seconds()))
    out("duration", "humanize.precisedelta", label, humanize.precisedelta(delta, minimum_unit="seconds", format="%0.2f"))
