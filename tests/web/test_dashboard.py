"""The dashboard in headless Chromium against ``dasf-geo serve`` of the example.

Each test asserts on what a person sees (table cells, colours on the map,
messages next to fields, a progress bar) and saves screenshots under
``test-artifacts/web/``. Every page is checked for console errors and for
requests leaving 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from tests.conftest import REPO_ROOT
from tests.web.conftest import MODULES, Served, screenshot, serve
from tests.web.dashboard_page import (
    Watched,
    close,
    screen_pixels,
    viridis,
    wait_rendered,
    watch,
)

SAMPLE = REPO_ROOT / "sample_data" / "gridded_temperature.nc"
STATIONS = REPO_ROOT / "sample_data" / "stations.csv"


@pytest.fixture
def dashboard(
    browser: Any, geo_service: Served, extras_service: Served
) -> Iterator[Any]:
    """Open the dashboard on a topic and member: ``dashboard("geo_service", "f")``."""
    contexts: list[Any] = []
    watched_pages: list[Watched] = []

    def open_page(topic: str, member: str) -> Watched:
        context = browser.new_context(viewport={"width": 1400, "height": 1100})
        contexts.append(context)
        page = context.new_page()
        watched = watch(page)
        watched_pages.append(watched)
        page.goto(f"{geo_service.gateway}/#{topic}/{member}")
        page.wait_for_selector(f"section.member[data-member='{member}']", timeout=20000)
        return watched

    try:
        yield open_page
        for watched in watched_pages:
            assert watched.errors == []
            assert watched.outside(geo_service.http_port) == []
    finally:
        for context in contexts:
            context.close()


def call(page: Any) -> None:
    page.click("[data-testid=call]")


def wait_result(page: Any, selector: str) -> Any:
    page.wait_for_selector(selector, timeout=30000)
    return page.locator(selector)


def test_get_data_draws_the_sample_grid_on_a_map(dashboard: Any) -> None:
    page = dashboard("geo_service", "get_data").page
    call(page)
    wait_result(page, "[data-testid=map]")
    wait_rendered(page)
    expected = xr.load_dataset(SAMPLE)
    tas = expected["tas"].values
    lo, hi = float(np.nanmin(tas)), float(np.nanmax(tas))
    assert page.inner_text("[data-testid=colorbar-min]") == f"{lo:.5g}"
    assert page.inner_text("[data-testid=colorbar-max]") == f"{hi:.5g}"
    assert page.inner_text("[data-testid=dataset-dims]").endswith(
        "dimensions: time (12), lat (18), lon (36)"
    )
    assert "crs: EPSG:4326" in page.inner_text("[data-testid=dataset-findings]")
    page.locator("[data-testid=map]").scroll_into_view_if_needed()
    screenshot(page, "get_data")
    screenshot(page, "get_data_map", page.locator(".map-box"))
    land = screen_pixels(page)

    # the colours of known cells, without the land outlines drawn over them
    before = wait_rendered(page)
    page.uncheck("[data-testid=coastlines-toggle]")
    wait_rendered(page, before)
    image = screen_pixels(page)
    # every 4th row and 5th column, clear of the zoom buttons in the top-left corner
    cells = [(j, i) for j in range(1, 17, 4) for i in range(2, 36, 5)]
    lats = expected["lat"].values
    lons = expected["lon"].values
    for j, i in cells:
        x, y = page.evaluate(
            f"dasfGeoDashboard.map.clientPixelOf({lons[i]}, {lats[j]})"
        )
        got = image.getpixel((round(x), round(y)))
        want = viridis(float(tas[0, j, i]), lo, hi)
        assert close(got, want), (lats[j], lons[i], got, want)

    # the land outlines: red lines where the coastline-free picture has none
    with_land = np.asarray(land, dtype=np.int16)
    without = np.asarray(image, dtype=np.int16)
    red = (with_land[..., 0] > 150) & (with_land[..., 1] < 100)
    differing = int(((with_land != without).any(axis=-1) & red).sum())
    assert differing > 2000
    assert page.evaluate("dasfGeoDashboard.landFeatureCount()") > 100

    # the time slider: another month, other colours
    before = wait_rendered(page)
    page.fill("[data-testid=time-slider]", "6")
    wait_rendered(page, before)
    assert page.inner_text("[data-testid=time-label]") == "time = 2023-08-15"
    image6 = screen_pixels(page)
    changed = 0
    for j, i in cells:
        x, y = page.evaluate(
            f"dasfGeoDashboard.map.clientPixelOf({lons[i]}, {lats[j]})"
        )
        got = image6.getpixel((round(x), round(y)))
        assert close(got, viridis(float(tas[6, j, i]), lo, hi)), (lats[j], lons[i])
        changed += got != image.getpixel((round(x), round(y)))
    assert changed > len(cells) // 2
    screenshot(page, "get_data_august", page.locator(".map-box"))

    # the value under the pointer
    x, y = page.evaluate(f"dasfGeoDashboard.map.clientPixelOf({lons[3]}, {lats[9]})")
    page.mouse.move(x, y)
    page.wait_for_function(
        "() => document.querySelector('[data-testid=map-value]')"
        ".textContent.includes('tas =')"
    )
    assert page.inner_text("[data-testid=map-value]").endswith(
        f"tas = {float(tas[6, 9, 3]):.5g} [K]"
    )


def test_stations_table_shows_the_filtered_rows_and_sorts(dashboard: Any) -> None:
    page = dashboard("geo_service", "stations").page
    page.fill("input[name=min_elevation]", "500")
    call(page)
    table = wait_result(page, "[data-testid=result-table]")
    expected = pd.read_csv(STATIONS)
    expected = expected[expected["elevation"] >= 500].reset_index(drop=True)
    headers = table.locator("thead th").all_inner_texts()
    assert headers[1:] == list(expected.columns)
    rows = table.locator("tbody tr")
    assert rows.count() == len(expected)
    first = rows.nth(0).locator("td").all_inner_texts()
    assert first[list(expected.columns).index("name")] == str(expected.loc[0, "name"])
    assert (
        float(first[list(expected.columns).index("elevation")])
        == expected.loc[0, "elevation"]
    )
    # sort by elevation, descending on the second click
    col = list(expected.columns).index("elevation") + 1
    table.locator("thead th").nth(col).click()
    table.locator("thead th").nth(col).click()
    top = rows.nth(0).locator("td").all_inner_texts()[col - 1]
    assert float(top) == expected["elevation"].max()
    screenshot(page, "stations")
    with page.expect_download() as info:
        page.click("[data-testid=csv-download]")
    text = Path(info.value.path()).read_text(encoding="utf-8")
    assert text.splitlines()[0] == "," + ",".join(expected.columns)
    assert len(text.splitlines()) == len(expected) + 1


def test_a_wrong_value_is_shown_next_to_its_field(dashboard: Any) -> None:
    page = dashboard("geo_service", "time_series").page
    page.fill("input[name=lat]", "north")
    page.fill("input[name=lon]", "10")
    call(page)
    error = page.locator("[data-field=lat] [data-testid=field-error]")
    error.wait_for()
    assert error.inner_text() == '"north" is not a number'
    assert page.locator("[data-field=lon] [data-testid=field-error]").is_hidden()
    screenshot(page, "field_error_client")
    # the server's structured error lands next to the field too
    page2 = dashboard("web_extras", "place").page
    page2.fill("fieldset[data-field=box] input[name=south]", "10")
    page2.fill("fieldset[data-field=box] input[name=north]", "20")
    page2.fill("textarea[name=weights]", '[1, "heavy"]')
    call(page2)
    error2 = page2.locator("[data-field=weights] [data-testid=field-error]")
    error2.wait_for(timeout=20000)
    assert error2.inner_text().startswith("1: ")
    assert "number" in error2.inner_text()
    assert "rejected the arguments" in page2.inner_text("[data-testid=call-error]")
    screenshot(page2, "field_error_server")
    page2 = dashboard("geo_service", "histogram").page
    # and the page keeps working
    page2.fill("textarea[name=values]", "1, 2, 2, 3, 3, 3")
    page2.fill("input[name=bins]", "3")
    call(page2)
    table = wait_result(page2, "[data-testid=result-table]")
    assert table.locator("tbody td").all_inner_texts() == ["1", "2", "3"]
    assert page2.locator("[data-field=values] [data-testid=field-error]").is_hidden()


def test_time_series_is_plotted(dashboard: Any) -> None:
    page = dashboard("geo_service", "time_series").page
    page.fill("input[name=lat]", "45")
    page.fill("input[name=lon]", "10")
    call(page)
    wait_result(page, "[data-testid=series-plot]")
    assert (
        page.inner_text("[data-testid=dataset-dims]")
        == "DataArray — dimensions: time (12)"
    )
    assert page.inner_text("[data-testid=map-error]") == (
        "no map preview: no variable has latitude/longitude (or x/y with a projected "
        "crs) as its last two dimensions: tas(time)"
    )
    screenshot(page, "time_series")


def test_monthly_anomaly_takes_an_uploaded_netcdf(
    dashboard: Any, tmp_path: Any
) -> None:
    page = dashboard("geo_service", "monthly_anomaly").page
    bad = tmp_path / "not.nc"
    bad.write_bytes(b"GIF89a not a netcdf file")
    page.set_input_files("input[name=ds]", str(bad))
    call(page)
    error = page.locator("[data-field=ds] [data-testid=field-error]")
    error.wait_for()
    assert (
        error.inner_text() == 'not.nc is not a NetCDF file (it starts with "GIF89a n")'
    )
    page.set_input_files("input[name=ds]", str(SAMPLE))
    call(page)
    wait_result(page, "[data-testid=map]")
    wait_rendered(page)
    assert "tas_anomaly" in page.inner_text("[data-testid=dataset-variables]")
    screenshot(page, "monthly_anomaly")


def test_progress_bar_advances(dashboard: Any) -> None:
    page = dashboard("web_extras", "count").page
    # the reporter is the backend's business: no field for it
    assert page.locator("[data-field=reporter]").count() == 0
    page.fill("input[name=n]", "5")
    page.fill("input[name=delay]", "0.6")
    page.evaluate("""() => { window.seen = [];
        new MutationObserver(() => {
          const p = document.querySelector('[data-testid=progress]');
          if (p && p.hasAttribute('value')) window.seen.push(p.value); })
        .observe(document.body,
          {subtree: true, childList: true, attributes: true, characterData: true});
        }""")
    call(page)
    page.wait_for_function("() => window.seen.some(v => v > 0 && v < 1)", timeout=20000)
    screenshot(page, "progress_running")
    wait_result(page, "[data-testid=result-json]")
    seen = page.evaluate("window.seen")
    steps = sorted({round(v, 2) for v in seen if 0 < v < 1})
    assert len(steps) >= 3, seen
    assert page.inner_text("[data-testid=result-json]") == "5"
    assert page.inner_text("[data-testid=progress-text]") == "done"


@pytest.mark.parametrize(
    ("member", "expect"),
    [
        ("all_nan", ("notes", "every value of v is missing (NaN): nothing to colour")),
        (
            "no_coords",
            (
                "error",
                "no map preview: no variable has latitude/longitude (or x/y with a "
                "projected crs) as its last two dimensions: counts(bin)",
            ),
        ),
        ("projected", ("notes", "x/y in EPSG:3857; coastlines reprojected")),
        ("big_grid", ("notes", "")),
        ("one_step", ("slider", "time = 2024-01-01")),
        ("fails", ("call", "the service answered with an error: ")),
    ],
)
def test_awkward_results_show_a_clear_message(
    dashboard: Any, member: str, expect: tuple[str, str]
) -> None:
    page = dashboard("web_extras", member).page
    call(page)
    kind, text = expect
    if kind == "notes":
        wait_result(page, "[data-testid=map]")
        wait_rendered(page)
        assert page.inner_text("[data-testid=map-notes]") == text
    elif kind == "error":
        assert wait_result(page, "[data-testid=map-error]").inner_text() == text
    elif kind == "slider":
        wait_result(page, "[data-testid=map]")
        assert page.is_disabled("[data-testid=time-slider]")
        assert page.inner_text("[data-testid=time-label]") == text
    else:
        message = wait_result(page, "[data-testid=call-error]").inner_text()
        assert message.startswith(text) and "it always fails" in message
    screenshot(page, f"awkward_{member}")
    if member == "projected":
        # the cell at x=0.5e6, y=-1e6 has value 10 on the range 0..11
        page.locator("[data-testid=map]").scroll_into_view_if_needed()
        before = wait_rendered(page)
        page.uncheck("[data-testid=coastlines-toggle]")
        wait_rendered(page, before)
        x, y = page.evaluate("dasfGeoDashboard.map.clientPixelOf(0.5e6, -1.0e6)")
        assert close(
            screen_pixels(page).getpixel((round(x), round(y))), viridis(10, 0, 11)
        )


def test_nested_models_and_unions_get_a_form(dashboard: Any) -> None:
    page = dashboard("web_extras", "place").page
    assert page.locator("fieldset[data-field=box] input[name=south]").count() == 1
    assert page.locator("select[name=mode] option").all_inner_texts()[1:] == [
        "centre",
        "corner",
    ]
    page.fill("fieldset[data-field=box] input[name=south]", "100")
    page.fill("fieldset[data-field=box] input[name=north]", "20")
    call(page)
    error = page.locator("[data-field=south] [data-testid=field-error]")
    error.wait_for()
    assert error.inner_text() == "must be at most 90"
    page.fill("fieldset[data-field=box] input[name=south]", "10")
    page.select_option("select[name=mode]", label="centre")
    page.fill("textarea[name=tag]", '"north"')
    call(page)
    result = wait_result(page, "[data-testid=result-json]")
    assert (
        result.inner_text()
        == '{\n  "where": 15,\n  "tag": "north",\n  "weights": []\n}'
    )
    screenshot(page, "nested_form")


def test_a_service_that_disappears_is_reported_and_the_page_keeps_working(
    dashboard: Any, geo_service: Served
) -> None:
    vanishing = serve(
        MODULES / "web_extras.py", broker=geo_service.broker, topic="vanishing"
    )
    try:
        page = dashboard("vanishing", "count").page
    finally:
        vanishing.proc.stop()
    page.fill("input[name=n]", "1")
    call(page)
    message = wait_result(page, "[data-testid=call-error]").inner_text()
    assert message == (
        "the service on topic 'vanishing' does not answer (is it still running?)"
    )
    screenshot(page, "service_gone")
    page.click("nav button[data-topic=geo_service]")
    page.wait_for_selector("section.member[data-member=get_data]")
    call(page)
    wait_result(page, "[data-testid=map]")


def test_a_page_without_gateway_finds_services_over_dasf(
    browser: Any, static_server: str, geo_service: Served
) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    try:
        page = context.new_page()
        watched = watch(page)
        page.goto(
            f"{static_server}/?broker={geo_service.broker}&topic=geo_service"
            "#geo_service/stations"
        )
        page.wait_for_selector("section.member[data-member=stations]", timeout=20000)
        call(page)
        table = wait_result(page, "[data-testid=result-table]")
        assert table.locator("tbody tr").count() == len(pd.read_csv(STATIONS))
        screenshot(page, "without_gateway")
        assert watched.errors == []
        assert watched.outside() == []
    finally:
        context.close()


def test_a_page_without_services_or_broker_says_what_to_do(
    browser: Any, static_server: str
) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(static_server + "/")
        text = wait_result(page, "[data-testid=discovery-error]").inner_text()
        assert text == (
            "cannot list the services (GET services: HTTP 404); open the page from "
            "`dasf-geo serve` or `dasf-geo gateway`, or add "
            "?broker=ws://HOST:PORT&topic=TOPIC to its URL"
        )
    finally:
        context.close()


def test_a_dataframe_argument_is_uploaded_as_csv(
    dashboard: Any, tmp_path: Path
) -> None:
    page = dashboard("web_extras", "summarize").page
    bad = tmp_path / "ragged.csv"
    bad.write_text("a,b\n1,2\n3\n")
    page.set_input_files("input[name=table]", str(bad))
    call(page)
    error = page.locator("[data-field=table] [data-testid=field-error]")
    error.wait_for()
    assert error.inner_text() == "ragged.csv: CSV line 3 has 1 cells, the header has 2"
    page.set_input_files("input[name=table]", str(STATIONS))
    call(page)
    table = wait_result(page, "[data-testid=result-table]")
    stations = pd.read_csv(STATIONS)
    cells = table.locator("tbody td").all_inner_texts()
    assert int(cells[0]) == len(stations)
    assert float(cells[1]) == pytest.approx(stations["elevation"].mean(), rel=1e-6)
    assert float(cells[2]) == stations["elevation"].max()
    screenshot(page, "dataframe_upload")


def test_a_service_that_dies_during_a_call_is_reported(
    dashboard: Any, geo_service: Served
) -> None:
    dying = serve(MODULES / "web_extras.py", broker=geo_service.broker, topic="dying")
    try:
        page = dashboard("dying", "count").page
        page.fill("input[name=n]", "100")
        page.fill("input[name=delay]", "0.5")
        call(page)
        page.wait_for_function(
            "() => document.querySelector('[data-testid=progress]')?.value > 0",
            timeout=20000,
        )
    finally:
        dying.proc.kill()
    message = page.locator("[data-testid=call-error]")
    message.wait_for(timeout=60000)
    assert message.inner_text() == (
        "the service on topic 'dying' stopped answering during the call"
    )
    assert page.is_enabled("[data-testid=call]")
    screenshot(page, "service_died")


def test_docstrings_show_their_markup_not_the_backticks(dashboard: Any) -> None:
    page = dashboard("geo_service", "monthly_anomaly").page
    section = page.locator("section.member[data-member=monthly_anomaly]")
    # "Subtract the time mean of ``variable`` from each month."
    assert section.locator(".doc code").first.inner_text() == "variable"
    # the service's description: prose paragraphs and its literal block
    service_doc = page.locator("main.service > .doc")
    assert (
        "dasf-geo serve examples/geo_service.py"
        in service_doc.locator("pre").first.inner_text()
    )
    # the list of functions and the field hints use the same rendering
    assert page.locator("ul.functions li .doc code").count() >= 1
    visible = page.locator("main.service").inner_text()
    assert "``" not in visible and "::" not in visible
    screenshot(page, "docstrings")
