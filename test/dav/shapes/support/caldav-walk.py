# A second real client for the shape tests: python-caldav (Debian python3-caldav) walks discovery
# from the bare URL given in argv[1] (principal -> calendar home -> calendars), then creates, reads
# back, updates and deletes one event. Credentials come from the environment (never argv: it is
# visible to every local user); POSTERN_CA is the CA bundle to trust. Prints one JSON line.
import json, os, sys
import caldav

url = sys.argv[1]
client = caldav.DAVClient(url=url, username=os.environ["WALK_USER"], password=os.environ["WALK_PASSWORD"], ssl_verify_cert=os.environ["POSTERN_CA"])
principal = client.principal()
calendars = principal.calendars()
if not calendars:
    calendars = [principal.make_calendar(name="python-walk")]
calendar = calendars[0]
ics = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//postern tests//EN\r\nBEGIN:VEVENT\r\nUID:python-walk-1\r\nDTSTAMP:20260101T090000Z\r\nDTSTART:20260106T090000Z\r\nDTEND:20260106T100000Z\r\nSUMMARY:%s\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
event = calendar.save_event(ics % "Python walk")
read = calendar.event_by_uid("python-walk-1")
read.load()
first = read.data
read.data = ics % "Python walk (moved)"
read.save()
again = calendar.event_by_uid("python-walk-1")
again.load()
second = again.data
again.delete()
gone = [e for e in calendar.events() if "python-walk-1" in (e.data or "")]
print(json.dumps({
    "principal": str(principal.url),
    "home": str(principal.calendar_home_set.url),
    "calendars": [str(c.url) for c in calendars],
    "event": str(event.url),
    "read": "SUMMARY:Python walk" in first,
    "updated": "SUMMARY:Python walk (moved)" in second,
    "deleted": len(gone) == 0,
}))
