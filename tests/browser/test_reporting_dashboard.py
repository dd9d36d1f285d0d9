"""A supervisor's reporting journey in the browser: the dashboard's charts are drawn, a
department filter narrows the figures, a figure drills down to its conversations and one of
them opens its transcript; then a daily metric e-mail is scheduled in the admin."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest
from channels.db import database_sync_to_async
from playwright.async_api import expect

from reporting import schedules, services
from reporting.models import MetricReport
from tests.auth import log_in_browser
from tests.factories import UserFactory
from tests.reporting import scenario

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct-horse-battery-staple"
DASHBOARD = "/admin/reporting/reportingsettings/dashboard/"


@pytest.fixture
def history(db):
    built = scenario.build()
    services.recompute_days(start=scenario.DAY - dt.timedelta(days=7), end=scenario.NEXT_DAY)
    UserFactory(username="sam", password=PASSWORD, is_superuser=True)
    return built


def headline(page, label: str):
    return page.locator("table.reporting-headlines tr").filter(
        has=page.get_by_role("rowheader", name=label, exact=True)
    )


async def test_supervisor_filters_drills_down_to_a_transcript_and_schedules_an_email(open_page, history, mailoutbox):
    page = await open_page(width=1400, height=900)
    await log_in_browser(page, username="sam", password=PASSWORD, next_path=DASHBOARD)
    await page.get_by_label("From").fill("2026-03-10")
    await page.get_by_label("To").fill("2026-03-10")
    await page.get_by_role("button", name="Show").click()

    # All departments: 7 chats, one missed (support), one abandoned (billing).
    await expect(headline(page, "Chats").locator("td").first).to_have_text("7")
    await expect(headline(page, "Missed").locator("td").first).to_have_text("1")
    await expect(headline(page, "Abandoned").locator("td").first).to_have_text("1")
    # Chart.js drew the charts from the page's data (one point per day of the range).
    points = await page.evaluate("Chart.getChart('chart-daily').data.labels")
    assert points == ["2026-03-10"]
    assert await page.evaluate("Chart.getChart('chart-hourly') !== undefined")

    # The department filter keeps the range and narrows every figure.
    await page.get_by_label("Department").select_option(label="Patient support")
    await page.get_by_role("button", name="Show").click()
    await expect(page).to_have_url(re.compile(r"start=2026-03-10.*department=support"))
    await expect(headline(page, "Abandoned").locator("td").first).to_have_text("0")
    await expect(headline(page, "Missed").locator("td").first).to_have_text("1")

    # The missed figure opens the conversation behind it, and that one its transcript.
    await headline(page, "Missed").get_by_role("link", name="1").click()
    missed = history.conversations["c3"]
    await expect(page.locator("#reporting-drilldown")).to_contain_text("Patient support")
    await expect(page.locator("#reporting-drilldown")).to_contain_text("1 conversation.")
    await page.get_by_role("link", name=f"#{missed.pk}").click()
    await expect(page).to_have_url(re.compile(rf"/admin/chat/conversation/{missed.pk}/change/"))

    # A daily e-mail of the headline figures for support, scheduled in the admin.
    await page.goto("/admin/reporting/metricreport/add/")
    await page.get_by_label("Name").fill("Morning figures")
    await page.get_by_label("Recipients").fill("lead@example.com, coach@example.com")
    await page.get_by_label("Frequency").select_option(value="daily")
    await page.locator("#id_departments_from option", has_text="Patient support").dblclick()
    await page.get_by_label("Headline figures").check()
    await page.get_by_role("button", name="Save", exact=True).click()
    await expect(page.locator(".messagelist")).to_contain_text("Morning figures")

    # It comes due at 07:00 in the organisation's time zone and goes to both addresses.
    report = await database_sync_to_async(MetricReport.objects.get)(name="Morning figures")
    assert report.frequency == "daily"
    seven_local = dt.datetime.now(dt.UTC).astimezone(ZoneInfo("Europe/Berlin")).replace(hour=7, minute=1)
    result = await database_sync_to_async(schedules.send_due)(now=seven_local + dt.timedelta(days=1))
    assert result["sent"] == 1, result
    (mail,) = mailoutbox
    assert sorted(mail.to) == ["coach@example.com", "lead@example.com"]
    assert "Departments: Patient support" in mail.body
    assert "Wait, average: – \n" not in mail.body and "Wait, average: –\n" in mail.body  # no data that day
