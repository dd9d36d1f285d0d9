// Draws the dashboard's charts (Chart.js) from the JSON data element the template renders (no
// inline script). A point of the daily chart opens the drill-down of that day's chats.
(function () {
  "use strict";
  var el = document.getElementById("reporting-data");
  if (!el || typeof Chart === "undefined") return;
  var data = JSON.parse(el.textContent);
  var days = data.daily.map(function (d) { return d.day; });
  var counts = { beginAtZero: true, ticks: { precision: 0 } };

  function series(key, scale) {
    return data.daily.map(function (d) {
      var v = d[key];
      return v === null || v === undefined ? null : v * (scale || 1);
    });
  }

  function openDay(day) {
    var url = new URL(data.drill, window.location.href);
    url.searchParams.set("start", day);
    url.searchParams.set("end", day);
    window.location.assign(url.toString());
  }

  var daily = document.getElementById("chart-daily");
  if (daily) {
    new Chart(daily, {
      type: "line",
      data: {
        labels: days,
        datasets: [
          { label: "Chats", data: series("chats") },
          { label: "Missed", data: series("missed") },
          { label: "Abandoned", data: series("abandoned") },
        ],
      },
      options: {
        animation: false,
        scales: { y: counts },
        onClick: function (_event, elements) {
          if (elements.length) openDay(days[elements[0].index]);
        },
      },
    });
  }
  var hourly = document.getElementById("chart-hourly");
  if (hourly) {
    new Chart(hourly, {
      type: "bar",
      data: {
        labels: data.hourly.map(function (_, h) { return String(h).padStart(2, "0"); }),
        datasets: [{ label: "Chats", data: data.hourly }],
      },
      options: { animation: false, scales: { y: counts } },
    });
  }
  var times = document.getElementById("chart-times");
  if (times) {
    new Chart(times, {
      type: "line",
      data: {
        labels: days,
        datasets: [
          { label: "Wait", data: series("wait_avg"), spanGaps: true },
          { label: "Handle time", data: series("handle_avg"), spanGaps: true },
        ],
      },
      options: { animation: false, scales: { y: { beginAtZero: true } } },
    });
  }
  var quality = document.getElementById("chart-quality");
  if (quality) {
    new Chart(quality, {
      type: "line",
      data: {
        labels: days,
        datasets: [
          { label: "CSAT", data: series("csat", 100), spanGaps: true },
          { label: "QA score", data: series("qa_average"), spanGaps: true },
        ],
      },
      options: { animation: false, scales: { y: { beginAtZero: true, max: 100 } } },
    });
  }
})();
