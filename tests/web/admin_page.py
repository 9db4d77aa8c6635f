"""Drives the admin page of `inlet run` in headless Chromium, as a person would see it.

    python tests/web/admin_page.py URL --tables NAME[,NAME...] [--timeout SECONDS]

1. opens URL and waits until a `section.table[data-table=NAME]` is shown for every NAME;
2. records, per table, the newest COMPLETED instant of its timeline rows (or null);
3. waits, polling the DOM without reloading, until one table shows a newer COMPLETED instant;
4. prints one line of JSON:
   {"tables_shown": [...], "first": {NAME: INSTANT|null, ...},
    "new_commit": {"table": ..., "instant": ..., "action": ...},
    "pipelines": [{"name": ..., "state": ...}, ...]}
   and exits 0. Any failure (a timeout, a console error, an uncaught page error) is reported on
   stderr with exit status 1.

--timeout bounds the whole run (both waits together). Chromium is the system one: $INLET_CHROMIUM,
else /usr/bin/chromium or /usr/bin/chromium-browser (Playwright's own browser download is not
used). With $INLET_SCREENSHOT set, a full-page screenshot is written there at the end, whether the
run passed or not.
"""
import argparse
import json
import os
import sys
import time

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright

POLL_MS = 250

# Reads what the page shows: table sections, the newest completed instant of each, the pipelines.
READ_PAGE = """() => {
  const newest = (section) => {
    let best = null;
    for (const row of section.querySelectorAll('table.timeline tr[data-state="COMPLETED"]')) {
      const instant = row.getAttribute("data-instant");
      if (best === null || instant > best.instant) {
        best = { instant, action: row.getAttribute("data-action") };
      }
    }
    return best;
  };
  return {
    tables: [...document.querySelectorAll("section.table[data-table]")].map((s) => ({
      name: s.getAttribute("data-table"), newest: newest(s) })),
    pipelines: [...document.querySelectorAll("tr[data-pipeline]")].map((r) => ({
      name: r.getAttribute("data-pipeline"), state: r.getAttribute("data-state") })),
    banner: (() => { const b = document.getElementById("banner"); return b && !b.hidden ? b.textContent : null; })(),
  };
}"""


class Failure(Exception):
    pass


def chromium_path():
    env = os.environ.get("INLET_CHROMIUM")
    if env:
        if not os.path.exists(env):
            raise Failure(f"INLET_CHROMIUM={env} does not exist")
        return env
    for path in ("/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if os.path.exists(path):
            return path
    raise Failure("no Chromium found: set INLET_CHROMIUM or install Debian's chromium package")


def banner_note(state):
    return f" (the page's error banner says: {state['banner']!r})" if state.get("banner") else ""


def drive(page, url, expected, deadline, errors):
    def check_errors(state):
        if errors:
            raise Failure("the page reported errors:\n  " + "\n  ".join(errors) + banner_note(state))

    def wait(what, done):
        """Polls READ_PAGE until done(state) is truthy; fails on an error or at the deadline."""
        while True:
            # Sleeping through Playwright lets the page run and the console events arrive.
            state = page.evaluate(READ_PAGE)
            check_errors(state)
            result = done(state)
            if result:
                return state, result
            if time.monotonic() >= deadline:
                raise Failure(f"timed out waiting for {what}; the page shows tables "
                              f"{[t['name'] for t in state['tables']]}{banner_note(state)}")
            page.wait_for_timeout(POLL_MS)

    page.goto(url, wait_until="load")

    def all_shown(state):
        shown = {t["name"] for t in state["tables"]}
        return all(name in shown for name in expected)

    state, _ = wait(f"the tables {expected}", all_shown)
    first = {t["name"]: (t["newest"]["instant"] if t["newest"] else None) for t in state["tables"]}

    def new_commit(state):
        for t in state["tables"]:
            newest = t["newest"]
            if newest and (first.get(t["name"]) is None or newest["instant"] > first[t["name"]]):
                return {"table": t["name"], "instant": newest["instant"], "action": newest["action"]}
        return None

    state, commit = wait("a completed instant newer than "
                         + json.dumps({name: first.get(name) for name in expected}, ensure_ascii=False),
                         new_commit)
    return {
        "tables_shown": [t["name"] for t in state["tables"]],
        "first": first,
        "new_commit": commit,
        "pipelines": state["pipelines"],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url")
    ap.add_argument("--tables", required=True, help="comma-separated table names that must be shown")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds for the whole run (default 60)")
    args = ap.parse_args()
    expected = [name for name in args.tables.split(",") if name]
    deadline = time.monotonic() + args.timeout
    screenshot = os.environ.get("INLET_SCREENSHOT")

    try:
        executable = chromium_path()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(max(args.timeout, 1) * 1000)
                errors = []
                page.on("console", lambda msg: msg.type == "error" and errors.append(
                    f"console error: {msg.text} ({msg.location.get('url', '')}:{msg.location.get('lineNumber', '')})"))
                page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
                try:
                    report = drive(page, args.url, expected, deadline, errors)
                finally:
                    if screenshot:
                        try:
                            page.screenshot(path=screenshot, full_page=True)
                        except PlaywrightError as e:
                            print(f"admin_page: could not take the screenshot: {e}", file=sys.stderr)
            finally:
                browser.close()
    except Failure as e:
        print(f"admin_page: FAILED: {e}", file=sys.stderr)
        return 1
    except PlaywrightError as e:
        print(f"admin_page: FAILED (browser): {e}", file=sys.stderr)
        return 1

    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
