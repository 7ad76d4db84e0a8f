// The Heat demo: how many polls does it take to notice that an operation finished, and how late?
//
// OpenStack Heat polled every second: 600 API calls for a 10-minute server build. Its improve-api-polling
// blueprint proposed geometric polling, 1 s growing by 1.1 up to 20 s: about 50 calls, never more than 20 s
// late. This program prints that table for several schedules and writes the blueprint's two graphs (the
// interval before each poll, and the running count of polls) as an SVG chart that opens in any browser.
//
// Usage: heat_plan [chart.svg]     (default: heat_plan.svg in the current directory)

#include <pollster/pollster.hpp>

#include <algorithm>  // max
#include <chrono>     // seconds
#include <cstdio>     // printf
#include <fstream>    // ofstream
#include <functional> // function
#include <sstream>    // ostringstream
#include <string>     // string
#include <vector>     // vector

using namespace std::chrono_literals;

namespace {

/// A schedule with a name and a colour, type-erased to "give me a fresh copy's delays".
struct contender {
  std::string name;
  std::string colour;
  std::function<pollster::plan(pollster::duration)> plan;
  std::function<std::vector<pollster::duration>(std::size_t)> preview;
};

template <class Schedule>
contender make_contender(std::string name, std::string colour, Schedule schedule) {
  return {std::move(name), std::move(colour),
          [schedule](pollster::duration t) { return pollster::plan_for(schedule, t); },
          [schedule](std::size_t n) { return schedule.preview(n); }};
}

double seconds(pollster::duration d) { return std::chrono::duration<double>(d).count(); }

/// One chart: axes, grid, a polyline per series, a legend. Coordinates in data units.
struct chart {
  std::string title, x_label, y_label;
  double x_max, y_max;
  double left, top, width = 520, height = 320;

  double px(double x) const { return left + 60 + x / x_max * (width - 80); }
  double py(double y) const { return top + 40 + (height - 80) * (1 - y / y_max); }

  void frame(std::ostringstream& svg, int x_ticks, int y_ticks) const {
    svg << "<text x='" << left + width / 2 << "' y='" << top + 22
        << "' text-anchor='middle' font-size='15' font-weight='bold'>" << title << "</text>\n";
    for (int i = 0; i <= x_ticks; ++i) {
      const double x = x_max * i / x_ticks;
      svg << "<line x1='" << px(x) << "' y1='" << py(0) << "' x2='" << px(x) << "' y2='" << py(y_max)
          << "' stroke='#e4e4e4'/>\n<text x='" << px(x) << "' y='" << py(0) + 16
          << "' text-anchor='middle' font-size='11'>" << x << "</text>\n";
    }
    for (int i = 0; i <= y_ticks; ++i) {
      const double y = y_max * i / y_ticks;
      svg << "<line x1='" << px(0) << "' y1='" << py(y) << "' x2='" << px(x_max) << "' y2='" << py(y)
          << "' stroke='#e4e4e4'/>\n<text x='" << px(0) - 6 << "' y='" << py(y) + 4
          << "' text-anchor='end' font-size='11'>" << y << "</text>\n";
    }
    svg << "<rect x='" << px(0) << "' y='" << py(y_max) << "' width='" << px(x_max) - px(0) << "' height='"
        << py(0) - py(y_max) << "' fill='none' stroke='#444'/>\n";
    svg << "<text x='" << (px(0) + px(x_max)) / 2 << "' y='" << py(0) + 34
        << "' text-anchor='middle' font-size='12'>" << x_label << "</text>\n";
    svg << "<text transform='translate(" << left + 16 << "," << (py(0) + py(y_max)) / 2
        << ") rotate(-90)' text-anchor='middle' font-size='12'>" << y_label << "</text>\n";
  }

  void series(std::ostringstream& svg, const std::vector<std::pair<double, double>>& points,
              const std::string& colour) const {
    svg << "<polyline fill='none' stroke='" << colour << "' stroke-width='2' points='";
    double last_y = 0;
    for (const auto& [x, y] : points) {
      if (x > x_max) {  // runs off the right edge: carry the last value to it
        svg << px(x_max) << ',' << py(std::min(last_y, y_max)) << ' ';
        break;
      }
      last_y = y;
      svg << px(x) << ',' << py(std::min(y, y_max)) << ' ';
      if (y >= y_max) break;  // leaves the chart here: a flat line along the top would be a lie
    }
    svg << "'/>\n";
  }
};

std::string render_svg(const std::vector<contender>& contenders) {
  std::ostringstream svg;
  svg.precision(5);
  svg << "<svg xmlns='http://www.w3.org/2000/svg' width='1080' height='400' font-family='sans-serif'>\n"
      << "<rect width='100%' height='100%' fill='white'/>\n";

  chart intervals{"Interval before each poll", "poll number", "seconds", 60, 40, 0, 0};
  chart running{"Polls made so far", "seconds since the operation started", "polls", 1200, 200, 540, 0};
  intervals.frame(svg, 6, 4);
  running.frame(svg, 6, 4);
  for (const contender& c : contenders) {
    const std::vector<pollster::duration> delays = c.preview(1300);
    std::vector<std::pair<double, double>> by_poll, by_time;
    double t = 0;
    by_time.emplace_back(0, 0);
    for (std::size_t i = 0; i < delays.size(); ++i) {
      by_poll.emplace_back(static_cast<double>(i + 1), seconds(delays[i]));
      t += seconds(delays[i]);
      by_time.emplace_back(t, static_cast<double>(i));  // a step: the count rises when the poll happens
      by_time.emplace_back(t, static_cast<double>(i + 1));
      if (t > running.x_max) break;
    }
    intervals.series(svg, by_poll, c.colour);
    running.series(svg, by_time, c.colour);
  }
  // Legend along the bottom.
  double x = 60;
  for (const contender& c : contenders) {
    svg << "<rect x='" << x << "' y='368' width='14' height='4' fill='" << c.colour << "'/>"
        << "<text x='" << x + 20 << "' y='374' font-size='11'>" << c.name << "</text>\n";
    x += 262;
  }
  svg << "</svg>\n";
  return svg.str();
}

}  // namespace

int main(int argc, char** argv) {
  const std::string chart_path = argc > 1 ? argv[1] : "heat_plan.svg";

  const std::vector<contender> contenders = {
      make_contender("fixed 1 s", "#d62728", pollster::constant{1s}),
      make_contender("Heat 1 s x1.1, cap 20 s", "#1f77b4", pollster::presets::heat()),
      make_contender("google-cloud-cpp 1s x2, 5 min, jittered", "#2ca02c", pollster::presets::google_cloud()),
      make_contender("gRPC 1 s x1.6, 120 s cap, then +-20%", "#9467bd", pollster::presets::grpc_connect()),
  };

  std::printf("Polls needed to notice an operation that completes at T (after the immediate first poll),\n"
              "and how late it is noticed. The jittered rows (google-cloud-cpp, gRPC) are medians over 1001\n"
              "seeded runs; the chart shows one seeded run of each.\n\n");
  std::printf("%-8s", "T");
  for (const contender& c : contenders) std::printf(" | %-39s", c.name.c_str());
  std::printf("\n%-8s", "");
  for (std::size_t i = 0; i < contenders.size(); ++i) std::printf(" | %6s %10s %10s %10s", "polls", "late", "worst", "mean");
  std::printf("\n");
  for (int t : {60, 120, 300, 600, 1200, 3600}) {
    std::printf("%-8s", (std::to_string(t) + " s").c_str());
    for (const contender& c : contenders) {
      const pollster::plan p = c.plan(std::chrono::seconds(t));
      std::printf(" | %6llu %9.2fs %9.2fs %9.2fs", static_cast<unsigned long long>(p.polls),
                  seconds(p.detection_delay), seconds(p.worst_detection_delay), seconds(p.mean_detection_delay));
    }
    std::printf("\n");
  }

  const pollster::plan ten_minutes = pollster::plan_for(pollster::presets::heat(), 10min);
  std::printf("\nHeat's schedule for a 10-minute operation: %s\n", pollster::to_string(ten_minutes).c_str());
  const pollster::plan google = pollster::plan_for(pollster::presets::google_cloud(), 10min);
  std::printf("google-cloud-cpp's, jittered, over seeded runs: %s\n", pollster::to_string(google).c_str());

  std::ofstream out(chart_path);
  out << render_svg(contenders);
  out.close();
  if (!out) {
    std::fprintf(stderr, "heat_plan: could not write %s\n", chart_path.c_str());
    return 1;
  }
  std::printf("Chart of intervals and running polls written to %s\n", chart_path.c_str());
  return ten_minutes.polls == 52 ? 0 : 2;  // the blueprint's number; anything else is a regression
}
