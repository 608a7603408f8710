"""The real Airflow UI of the default install, driven in headless Chromium the way a person uses it.

One browser, signed in as admin, for the module. Runs at Zoho's real limits take about 2 minutes each (every
download holds its pool slot for the 60 s window), so the tests that start runs only submit them and the last tests
wait for all of them at once: a Leads CSV export (criteria keep it to one page), an Events ICS export and a 2-day
backfill of ``zoho_crm_leads_csv`` all run together. Every test leaves a screenshot of its last screen in its
pytest temp dir (``<basetemp>/<test>0/last-screen.png``); ``ZOHO_UI_DOCS_SCREENSHOT=1`` also refreshes the README's
picture of the connection form (``docs/zoho-crm-connection-form.png``).

The default install is shared with ``tests/e2e/test_default_install.py`` (which counts its own runs, downloads and
tokens from its own start), so runs are found by their ids and counted from this module's start.
"""

from __future__ import annotations

import json
import os
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from include.devtools.airflow_stack import REPO_ROOT
from tests.deployments import LOCAL, Deployment
from tests.hooks.zoho_conn import CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN
from tests.ui import browser
from tests.ui.browser import click, element, log_in, replace_editor_text, toast, toast_ids, wait

pytestmark = [*LOCAL, pytest.mark.timeout(900)]

MANUAL_DAG = "zoho_crm_bulk_read"
SCHEDULED_DAG = "zoho_crm_leads_csv"
BACKFILL_DATES = ("2026/11/20", "2026/11/21")
"""Two daily intervals, apart from the e2e module's backfill (2026-11-10 .. 11-12)."""
FEW_LEADS = {"field": {"api_name": "Lead_Status"}, "comparator": "equal", "value": "Not Contacted"}
"""192 of the default install's 1,400 Leads: one 200-record page, so one download."""
DOCS_SCREENSHOT = REPO_ROOT / "docs" / "zoho-crm-connection-form.png"
TRIGGER_DIALOG = "//*[@role='dialog'][.//*[@data-testid='trigger-dag-submit']]"
CONNECTION_DIALOG = "//*[@role='dialog'][.//input[@name='connection_id']]"


@pytest.fixture(scope="module")
def ui(default_install: Deployment) -> Any:
    """The signed-in browser on the default install, after the shipped DAGs are parsed."""
    browser.require_chromium()
    for dag_id in (MANUAL_DAG, SCHEDULED_DAG):
        default_install.stack.wait_for_dag(dag_id, unpause=False)
    with browser.chromium() as driver:
        log_in(driver, default_install.stack.url)
        yield driver


@pytest.fixture
def screen(ui: Any, tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    """The browser; its last screen is saved as ``last-screen.png`` in the test's temp dir, pass or fail."""
    request.addfinalizer(lambda: browser.screenshot(ui, tmp_path / "last-screen.png"))
    return ui


@pytest.fixture(scope="module")
def started() -> dict[str, Any]:
    """Runs the submitting tests started, for the tests at the end that wait for them together."""
    return {}


# -- helpers -----------------------------------------------------------------------------------------------------
def run_ids(deployment: Deployment, dag_id: str) -> set[str]:
    return {run["dag_run_id"] for run in deployment.stack.dag_runs(dag_id)}


def new_run(deployment: Deployment, dag_id: str, before: set[str], timeout: float = 60) -> dict:
    """The one run of ``dag_id`` created since ``before`` (waits for it)."""

    def created() -> dict | None:
        runs = [run for run in deployment.stack.dag_runs(dag_id) if run["dag_run_id"] not in before]
        assert len(runs) <= 1, f"more than one run was created: {[run['dag_run_id'] for run in runs]}"
        return runs[0] if runs else None

    return wait(None, lambda _: created(), timeout, what=f"a new run of {dag_id}")


def open_trigger_form(driver: Any, url: str, dag_id: str) -> None:
    driver.get(f"{url}/dags/{dag_id}")
    click(driver, element(driver, "[data-testid=trigger-dag-button]", clickable=True))
    element(driver, "#element_criteria .view-lines")


def choose(driver: Any, label: str, option: str) -> None:
    """Pick ``option`` in the dropdown (a combobox) of the form field labelled ``label``."""
    box = element(driver, xpath=f"//label[starts-with(normalize-space(), '{label}')]/ancestor::div[@data-part='root'][1]"
                                "//input[@role='combobox']")
    click(driver, box)
    click(driver, element(driver, xpath=f"//*[@role='option'][normalize-space()='{option}']", clickable=True))


def fill_export_form(driver: Any, module: str, file_type: str, criteria: dict | None = None) -> None:
    field = element(driver, "#element_module")
    field.clear()
    field.send_keys(module)
    choose(driver, "File type", file_type)
    if criteria is not None:
        replace_editor_text(driver, "#element_criteria", json.dumps(criteria))


def submit_trigger(driver: Any) -> None:
    button = element(driver, "[data-testid=trigger-dag-submit]")
    wait(driver, lambda _: button.is_enabled(), what="the Trigger button to be enabled")
    click(driver, button)


def trigger_from_form(driver: Any, deployment: Deployment, module: str, file_type: str,
                      criteria: dict | None = None) -> dict:
    """Fill the trigger form of the manual DAG and submit it; return the run it created."""
    before = run_ids(deployment, MANUAL_DAG)
    open_trigger_form(driver, deployment.stack.url, MANUAL_DAG)
    fill_export_form(driver, module, file_type, criteria)
    submit_trigger(driver)
    return new_run(deployment, MANUAL_DAG, before)


def show_run(driver: Any, url: str, dag_id: str, run_id: str, task_id: str | None = None) -> str:
    """Open the run's page (or one task's, with its log) in the UI; return the page's text once it shows."""
    path = f"{url}/dags/{dag_id}/runs/{urllib.parse.quote(run_id, safe='')}"
    driver.get(path + (f"/tasks/{task_id}" if task_id else ""))
    element(driver, xpath=f"//*[normalize-space()={json.dumps(run_id)}]")
    return driver.find_element("tag name", "body").text


def wait_for_state(deployment: Deployment, dag_id: str, run_id: str, timeout: float = 600) -> str:
    return deployment.stack.wait_for_run(dag_id, run_id, timeout=timeout)


# -- the trigger form --------------------------------------------------------------------------------------------
def test_trigger_form_shows_every_param_with_its_help_and_the_seed_modules(
    screen: Any, default_install: Deployment
) -> None:
    """Every Param of zoho_crm_bulk_read is in the form with its title and (where the DAG gives one) its help text;
    the Module field offers the seed's modules and the custom module."""
    from zoho_crm.api.modules import SEED_MODULES

    params = default_install.stack.api("GET", f"/dags/{MANUAL_DAG}/details")["params"]
    open_trigger_form(screen, default_install.stack.url, MANUAL_DAG)
    form = element(screen, xpath=TRIGGER_DIALOG)
    labels = [label.get_attribute("textContent").replace("*", "").strip() for label in form.find_elements("css selector", "label")]
    helps = [help_text.text for help_text in form.find_elements("css selector", "[data-part=helper-text]")]
    assert set(params) == {"module", "fields", "file_type", "criteria", "cvid", "modified_from", "modified_to"}
    for name, param in params.items():
        schema = param["schema"]
        assert schema["title"] in labels, f"Param {name}: no field titled {schema['title']!r} in {labels}"
        if param.get("description"):
            assert param["description"] in helps, f"Param {name}: its help text is not shown"
    offered = [option.get_attribute("value") for option in form.find_elements("css selector", "#list_module option")]
    assert set(SEED_MODULES) <= set(offered), f"modules missing from the dropdown: {set(SEED_MODULES) - set(offered)}"
    assert "Shipments" in offered, "the custom module of include/config/zoho_crm_exports.json"
    assert element(screen, "#element_module").get_attribute("value") == "Leads"


def test_malformed_criteria_is_refused_before_a_run_is_created(screen: Any, default_install: Deployment) -> None:
    """Criteria that is not JSON: the form says why and keeps Trigger disabled. JSON that is not a Zoho criteria: the
    REST API refuses it (400) and the form says the trigger failed. Neither creates a run."""
    before = run_ids(default_install, MANUAL_DAG)
    open_trigger_form(screen, default_install.stack.url, MANUAL_DAG)
    replace_editor_text(screen, "#element_criteria", '{"field": {"api_name": "Lead_Status"}, "comparator": "equal"')
    error = element(screen, "[role=dialog] [data-part=error-text]")
    assert "JSON" in error.text, error.text
    assert not element(screen, "[data-testid=trigger-dag-submit]").is_enabled()

    replace_editor_text(screen, "#element_criteria", '{"comparator": "equal"}')
    shown = toast_ids(screen)
    submit_trigger(screen)
    kind, text = toast(screen, "Failed to Trigger Dag", exclude=shown, also="Bad Request")
    assert kind == "error" and "Bad Request" in text
    time.sleep(2)  # a run the refused request would have created would be listed by now
    assert run_ids(default_install, MANUAL_DAG) == before, "no run may be created"


def test_leads_csv_submitted_from_the_form_starts_a_run(
    screen: Any, default_install: Deployment, started: dict[str, Any]
) -> None:
    run = trigger_from_form(screen, default_install, "Leads", "csv", FEW_LEADS)
    assert run["conf"]["module"] == "Leads" and run["conf"]["file_type"] == "csv"
    assert run["conf"]["criteria"] == FEW_LEADS
    started["leads_csv"] = run["dag_run_id"]
    assert default_install.stack.api("GET", f"/dags/{MANUAL_DAG}")["is_paused"] is False, "unpaused on trigger"


def test_events_ics_starts_and_leads_ics_is_refused_saying_what_to_change(
    screen: Any, default_install: Deployment, started: dict[str, Any]
) -> None:
    """ICS only for Events: the schema cannot say that (one field depends on another), so resolve_query refuses a
    Leads ICS run before any Zoho call, and its log in the UI says to use csv."""
    events = trigger_from_form(screen, default_install, "Events", "ics")
    assert (events["conf"]["module"], events["conf"]["file_type"]) == ("Events", "ics")
    started["events_ics"] = events["dag_run_id"]

    leads = trigger_from_form(screen, default_install, "Leads", "ics")
    assert wait_for_state(default_install, MANUAL_DAG, leads["dag_run_id"], timeout=300) == "failed"
    states = {ti["task_id"]: ti["state"] for ti in default_install.stack.task_instances(MANUAL_DAG, leads["dag_run_id"])}
    assert states["resolve_query"] == "failed"
    assert states["create_job"] in ("upstream_failed", None), "no Zoho call after the refusal"
    message = "file_type 'ics' works only for module Events, not Leads: use 'csv'."
    show_run(screen, default_install.stack.url, MANUAL_DAG, leads["dag_run_id"], "resolve_query")
    element(screen, xpath=f"//*[contains(normalize-space(), {json.dumps(message)})]", timeout=120)


# -- the connection form -----------------------------------------------------------------------------------------
def add_zoho_connection(driver: Any, url: str, conn_id: str, sim_url: str, secret: str, docs_picture: Path | None
                        = None) -> None:
    """Admin > Connections > Add Connection, type Zoho CRM, the simulator's credentials and hosts, Save."""
    driver.get(url + "/connections")
    click(driver, element(driver, xpath="//button[normalize-space()='Add Connection']", clickable=True))
    element(driver, "input[name=connection_id]", clickable=True).send_keys(conn_id)
    types = element(driver, "[role=dialog] input[role=combobox]", clickable=True)
    click(driver, types)
    offered = [option.text for option in driver.find_elements("css selector", "[role=option]")]
    assert "Zoho CRM" in offered, offered
    types.send_keys("Zoho")
    click(driver, element(driver, xpath="//*[@role='option'][normalize-space()='Zoho CRM']", clickable=True))
    element(driver, "input[name=login]", clickable=True).send_keys(CLIENT_ID)
    driver.find_element("name", "password").send_keys(secret)
    click(driver, element(driver, xpath="//button[normalize-space()='Extra Fields']", clickable=True))
    for name, value in (("refresh_token", REFRESH_TOKEN), ("api_domain", sim_url), ("accounts_url", sim_url)):
        field = element(driver, f"input[name=element_{name}]", clickable=True)
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", field)
        field.send_keys(value)
    if docs_picture is not None:  # the whole dialog: a taller window for the picture, then back
        size = driver.get_window_size()
        driver.set_window_size(size["width"], 1900)
        try:
            dialog = element(driver, xpath=CONNECTION_DIALOG)
            driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", dialog)
            docs_picture.parent.mkdir(parents=True, exist_ok=True)
            dialog.screenshot(str(docs_picture))
        finally:
            driver.set_window_size(size["width"], size["height"])
    shown = toast_ids(driver)
    click(driver, element(driver, xpath="//button[normalize-space()='Save']", clickable=True))
    toast(driver, "successfully created", exclude=shown)


def test_connection(driver: Any, conn_id: str, also: str) -> tuple[str, str]:
    """Click the Test button of ``conn_id``'s row in Admin > Connections; return the result's type and text once
    it shows ``also``."""
    row = element(driver, xpath=f"//tr[.//*[normalize-space()='{conn_id}']]")
    shown = toast_ids(driver)
    click(driver, row.find_element("css selector", "button[aria-label='Test Connection']"))
    return toast(driver, "Test Connection ", exclude=shown, also=also)


test_connection.__test__ = False  # a helper, not a test


def test_the_zoho_crm_connection_form_and_its_test_button(
    screen: Any, default_install: Deployment, tmp_path: Path
) -> None:
    """The type list offers Zoho CRM; its form shows the Zoho fields (client id and secret, masked refresh token,
    data centre and environment dropdowns with their defaults, API version, download limit and window with
    Zoho's values, host overrides), hides host/schema/port; Test succeeds with the simulator's credentials and
    fails clearly for a wrong secret, naming client and data centre, without the secret."""
    url, sim_url = default_install.stack.url, default_install.sim.url
    picture = tmp_path / "connection-form.png"
    add_zoho_connection(screen, url, "zoho_crm_ui_ok", sim_url, CLIENT_SECRET, docs_picture=picture)
    if os.environ.get("ZOHO_UI_DOCS_SCREENSHOT") == "1":
        DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        DOCS_SCREENSHOT.write_bytes(picture.read_bytes())
    stored = default_install.stack.api("GET", "/connections/zoho_crm_ui_ok")
    extra = json.loads(stored["extra"])
    assert stored["conn_type"] == "zoho_crm" and stored["login"] == CLIENT_ID
    assert (stored["host"], stored["port"], stored["schema"]) == (None, None, None)
    assert {key: extra[key] for key in ("data_center", "environment", "api_version", "download_limit",
                                        "download_window_seconds", "api_domain", "accounts_url")} == {
        "data_center": "us", "environment": "production", "api_version": "v8", "download_limit": 10,
        "download_window_seconds": 60, "api_domain": sim_url, "accounts_url": sim_url,
    }, "the form's defaults and values, stored in the extra under the README's names"
    assert extra["refresh_token"] == "***", "the refresh token is a secret: the API masks it"

    # The form, opened again for editing: Zoho's fields, standard fields relabelled, unused ones hidden.
    row = element(screen, xpath="//tr[.//*[normalize-space()='zoho_crm_ui_ok']]")
    click(screen, row.find_element("css selector", "button[aria-label='Edit Connection']"))
    element(screen, "input[name=login]")
    form = element(screen, xpath=CONNECTION_DIALOG)
    labels = [label.get_attribute("textContent").replace("*", "").strip() for label in form.find_elements("css selector", "label")]
    for label in ("Client ID", "Client Secret", "Refresh token", "Data centre", "Environment", "API version",
                  "Download limit", "Download window (seconds)", "API host override", "Accounts host override"):
        assert label in labels, f"{label!r} missing from the form: {labels}"
    for hidden in ("host", "schema", "port"):
        assert not form.find_elements("css selector", f"input[name={hidden}]"), f"{hidden} must be hidden"
    assert form.find_element("name", "password").get_attribute("type") == "password"
    assert form.find_element("name", "element_refresh_token").get_attribute("type") == "password"
    click(screen, element(screen, "[role=dialog] button[aria-label=Close]", clickable=True))

    kind, text = test_connection(screen, "zoho_crm_ui_ok", also="Zoho")
    assert kind == "success", text
    assert "Test Connection Successful" in text and "Connected to Zoho CRM" in text and "fields of Leads" in text

    add_zoho_connection(screen, url, "zoho_crm_ui_wrong_secret", sim_url, "not-the-secret-7f3a")
    kind, text = test_connection(screen, "zoho_crm_ui_wrong_secret", also="invalid_client")
    assert kind == "error" and "Test Connection Failed" in text, text
    assert "invalid_client" in text and "Client Secret" in text and "data centre" in text, text
    for secret in ("not-the-secret-7f3a", CLIENT_SECRET, REFRESH_TOKEN):
        assert secret not in text


# -- backfill ----------------------------------------------------------------------------------------------------
def pick_date(driver: Any, label: str, day: str) -> None:
    """Open the date picker of the Backfill dialog's ``label`` field and type the day (time 00:00)."""
    root = element(driver, xpath=f"//label[normalize-space()='{label}']/ancestor::div[@data-part='root'][1]")
    click(driver, root.find_element("css selector", "[data-testid=datetime-input]"))
    date = element(driver, "input[placeholder='YYYY/MM/DD']", clickable=True)
    date.send_keys(day)
    element(driver, "input[placeholder='HH:mm']", clickable=True).send_keys("00:00")
    from selenium.webdriver.common.keys import Keys

    date.send_keys(Keys.ESCAPE)
    wait(driver, lambda _: day.replace("/", "-") in root.text or day in root.text or "Select date" not in root.text,
         what=f"the {label} date to be set")


def test_the_backfill_dialog_of_a_scheduled_dag_creates_a_backfill(
    screen: Any, default_install: Deployment, started: dict[str, Any]
) -> None:
    stack = default_install.stack
    before = run_ids(default_install, SCHEDULED_DAG)
    screen.get(f"{stack.url}/dags/{SCHEDULED_DAG}")
    click(screen, element(screen, "[data-testid=trigger-dag-button]", clickable=True))
    click(screen, element(screen, xpath="//label[contains(., 'Run this Dag for a range of dates')]", clickable=True))
    pick_date(screen, "From", BACKFILL_DATES[0])
    pick_date(screen, "To", BACKFILL_DATES[1])
    concurrent = element(screen, "input[name=max_active_runs]", clickable=True)  # both intervals at once
    concurrent.clear()
    concurrent.send_keys("2")
    run_backfill = element(screen, xpath="//button[normalize-space()='Run Backfill']", clickable=True)
    wait(screen, lambda _: run_backfill.is_enabled(), what="Run Backfill to be enabled (its dry run found runs)")
    click(screen, run_backfill)
    toast(screen, "Backfill")

    def backfill_runs() -> list[dict] | None:
        # Unpausing on trigger also schedules the latest interval's run: only the backfill's runs count here.
        runs = [run for run in stack.dag_runs(SCHEDULED_DAG)
                if run["dag_run_id"] not in before and run["run_type"] == "backfill"]
        return runs if len(runs) == 2 else None

    runs = wait(None, lambda _: backfill_runs(), 120, what="the backfill's 2 runs")
    assert {run["run_type"] for run in runs} == {"backfill"}
    assert sorted(run["data_interval_start"][:10] for run in runs) == [day.replace("/", "-") for day in BACKFILL_DATES]
    started["backfill"] = [run["dag_run_id"] for run in runs]


# -- the runs started above, waited for together -----------------------------------------------------------------
def assert_run_succeeded(driver: Any, deployment: Deployment, dag_id: str, run_id: str) -> None:
    state = wait_for_state(deployment, dag_id, run_id)
    failed = {ti["task_id"]: ti["state"] for ti in deployment.stack.task_instances(dag_id, run_id)
              if ti["state"] != "success"}
    assert state == "success", f"{dag_id} {run_id}: {state}; tasks not successful: {failed}"
    text = show_run(driver, deployment.stack.url, dag_id, run_id)
    assert "Success" in text or "success" in text, "the run's page shows it succeeded"


def test_the_leads_csv_run_from_the_form_succeeds(screen: Any, default_install: Deployment,
                                                  started: dict[str, Any]) -> None:
    assert "leads_csv" in started, "test_leads_csv_submitted_from_the_form_starts_a_run did not start the run"
    assert_run_succeeded(screen, default_install, MANUAL_DAG, started["leads_csv"])
    manifest = default_install.stack.return_value(MANUAL_DAG, started["leads_csv"], "manifest")
    assert manifest, "the manifest task returned the export's summary"


def test_the_events_ics_run_from_the_form_succeeds(screen: Any, default_install: Deployment,
                                                   started: dict[str, Any]) -> None:
    assert "events_ics" in started, "the Events ICS run was not started"
    assert_run_succeeded(screen, default_install, MANUAL_DAG, started["events_ics"])


def test_the_backfill_runs_succeed(screen: Any, default_install: Deployment, started: dict[str, Any]) -> None:
    assert "backfill" in started, "the backfill was not created"
    for run_id in started["backfill"]:
        assert_run_succeeded(screen, default_install, SCHEDULED_DAG, run_id)
