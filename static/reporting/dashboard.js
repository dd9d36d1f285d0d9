// Draws the dashboard's charts from the JSON data element the template renders (no inline script).
(function () {
  "use strict";
  var el = document.getElementById("reporting-data");
  if (!el || typeof Chart === "undefined") return;
  var data = JSON.parse(el.textContent);
  var daily = document.getElementById("chart-daily");
  if (daily) {
    new Chart(daily, {
      type: "line",
      data: {
        labels: data.daily.map(function (d) { return d.day; }),
        datasets: [
          { label: "Chats", data: data.daily.map(function (d) { return d.chats; }) },
          { label: "Missed", data: data.daily.map(function (d) { return d.missed; }) },
          { label: "Abandoned", data: data.daily.map(function (d) { return d.abandoned; }) },
        ],
      },
      options: { animation: false, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
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
      options: { animation: false, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
    });
  }
})();
