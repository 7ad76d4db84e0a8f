// 10 000 status requests against a server process on loopback (tests/servers/http_fault_server, cpp-httplib):
// pollster's curl_client (libcurl's multi interface on one I/O thread) against what a user would otherwise write, a
// pool of 64 threads each running blocking curl_easy_perform in a loop:
//
//   curl_multi/0/64      pollster::curl_client, every request started at once, 64 transfers at a time (the
//                        connections the pool uses), callbacks on its I/O thread; curl_poll/... the same on the
//                        curl_multi_poll loop instead of socket_action (/256: 256 transfers at a time)
//   threads_reuse/0      64 threads, each with an easy handle it keeps (its connection is reused)
//   threads_naive/0      64 threads, a fresh easy handle per request (a connection per request, as the old
//                        examples/http_operation did)
//   .../50/...           the same with a server that takes 50 ms per answer, as a real API does (2 000 requests),
//                        where curl_multi/50/256 keeps 256 transfers in flight on its one thread
//
// Each run measures the wall time, the CPU time of this whole process (every thread: Google Benchmark's
// MeasureProcessCPUTime), the requests served per CPU second, the peak extra resident and virtual memory while the
// run is under way (/proc/self/status, sampled every 2 ms), the connections opened, and the server's own count of
// the requests it served beside the client's. The server runs in its own process, so its CPU is not counted.
//
//   build-bench/benchmarks/http_bench --benchmark_repetitions=5 [--requests=10000] [--slow-requests=2000]
//                                     [--server-threads=1100] [--no-memory-sampling]
//
// Instructions per request in user space (the kernel's share is not counted): two callgrind runs that differ only
// in the number of requests, the difference of their totals divided by the difference of the counts:
//   valgrind --tool=callgrind --trace-children=no build-bench/benchmarks/http_bench --no-memory-sampling
//     --benchmark_filter='^curl_multi/0/64/0' --requests=2000   (one command line; then 4000; threads_reuse/0 likewise)
//
// The table at the end compares the medians (each benchmark's repetitions are its own sample).

#include <pollster/curl.hpp>

#include "../tests/servers/server_process.hpp"

#include <benchmark/benchmark.h>
#include <curl/curl.h>
#include <nlohmann/json.hpp>

#include <algorithm>  // sort
#include <atomic>     // atomic
#include <chrono>     // steady_clock
#include <cstdio>     // printf
#include <cstdlib>    // strtol
#include <cstring>    // strcmp, strncmp
#include <ctime>      // clock_gettime
#include <fstream>    // ifstream
#include <map>        // map
#include <string>     // string
#include <thread>     // thread
#include <vector>     // vector

namespace {

using namespace std::chrono_literals;

int requests_per_run = 10000;
int slow_requests_per_run = 2000;
int server_threads = 1100;
bool sample_memory = true;  // off for callgrind: reading /proc every 2 ms would be counted as the client's work
constexpr int client_threads = 64;
pollster_test::server_process* server = nullptr;

struct memory {
  double rss_mb = 0;
  double vm_mb = 0;
};

memory memory_now() {
  std::ifstream status("/proc/self/status");
  std::string line;
  memory m;
  while (std::getline(status, line)) {
    if (line.compare(0, 6, "VmRSS:") == 0) m.rss_mb = std::stod(line.substr(6)) / 1024.0;
    if (line.compare(0, 7, "VmSize:") == 0) m.vm_mb = std::stod(line.substr(7)) / 1024.0;
  }
  return m;
}

double process_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

/// The server's own count of the requests it served so far.
long long server_requests() {
  const pollster::http_response r = pollster::curl_perform(pollster::http_request(server->url("/_/stats")));
  if (r.status != 200) return -1;
  return nlohmann::json::parse(r.body).at("requests").get<long long>();
}

/// What one run measured, kept for the summary table.
struct sample {
  double wall = 0;
  double cpu = 0;
  double peak_rss_mb = 0;
  double peak_vm_mb = 0;
  long long ok = 0;
  long long served = 0;
  long long connections = 0;
};
std::map<std::string, std::vector<sample>> samples;

/// Runs `start` (which begins the run and returns at once) and waits until `finished()`, sampling memory.
template <class Start, class Finished, class Stop>
sample measure(Start&& start, Finished&& finished, Stop&& stop) {
  const memory before = memory_now();
  const long long served_before = server_requests();
  const double cpu_before = process_cpu_seconds();
  const auto wall_before = std::chrono::steady_clock::now();
  sample s;
  start();
  while (!finished()) {
    if (sample_memory) {
      const memory m = memory_now();
      s.peak_rss_mb = std::max(s.peak_rss_mb, m.rss_mb - before.rss_mb);
      s.peak_vm_mb = std::max(s.peak_vm_mb, m.vm_mb - before.vm_mb);
    }
    std::this_thread::sleep_for(2ms);
  }
  stop();
  s.wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_before).count();
  s.cpu = process_cpu_seconds() - cpu_before;
  s.served = server_requests() - served_before;  // (/_/stats itself is not counted)
  return s;
}

int requests_for(int delay_ms) { return delay_ms == 0 ? requests_per_run : slow_requests_per_run; }
std::string url_for(int delay_ms) {
  return server->url(delay_ms == 0 ? std::string("/ok") : "/respond?delay_ms=" + std::to_string(delay_ms));
}

void report(benchmark::State& state, const std::string& name, int requests, const sample& s) {
  samples[name].push_back(s);
  state.counters["req_per_cpu_s"] = static_cast<double>(requests) / s.cpu;
  state.counters["req_per_s"] = static_cast<double>(requests) / s.wall;
  state.counters["ok"] = static_cast<double>(s.ok);
  state.counters["server_served"] = static_cast<double>(s.served);
  state.counters["connections"] = static_cast<double>(s.connections);
  state.counters["peak_rss_MB"] = s.peak_rss_mb;
  state.counters["peak_vm_MB"] = s.peak_vm_mb;
}

// --- pollster: curl_client, one I/O thread ------------------------------------------------------------------------

void curl_multi(benchmark::State& state) {
  const int delay_ms = static_cast<int>(state.range(0));
  const auto transfers = static_cast<std::size_t>(state.range(1));
  const bool multi_poll = state.range(2) != 0;
  const int requests = requests_for(delay_ms);
  const std::string url = url_for(delay_ms);
  for (auto _ : state) {
    std::atomic<long long> ok{0};
    std::unique_ptr<pollster::curl_client> client;
    long long connections = 0;
    sample s = measure(
        [&] {
          pollster::curl_options options;
          options.max_transfers = transfers;
          if (multi_poll) options.event_loop = pollster::curl_event_loop::multi_poll;
          client = std::make_unique<pollster::curl_client>(options);
          for (int i = 0; i < requests; ++i) {
            client->start(pollster::http_request(url), [&ok](pollster::http_response&& r) {
              if (r.status == 200) ok.fetch_add(1, std::memory_order_relaxed);
            });
          }
        },
        [&] { return client->stats().completed == static_cast<std::uint64_t>(requests); },
        [&] {
          connections = static_cast<long long>(client->stats().connections_opened);
          client.reset();
        });
    s.ok = ok.load();
    s.connections = connections;
    report(state,
           std::string(multi_poll ? "curl_poll/" : "curl_multi/") + std::to_string(delay_ms) + "/" +
               std::to_string(transfers),
           requests, s);
  }
}

// --- the baselines: 64 threads of blocking curl_easy_perform ------------------------------------------------------

std::size_t keep_body(char* data, std::size_t size, std::size_t count, void* body) {
  static_cast<std::string*>(body)->append(data, size * count);
  return size * count;
}

/// One blocking request as a user writes it: the URL, a body callback, a timeout, perform, the status.
long perform_on(CURL* easy, const std::string& url, std::string& body) {
  body.clear();
  curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 30000L);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, keep_body);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &body);
  long status = 0;
  if (curl_easy_perform(easy) == CURLE_OK) curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
  return status;
}

template <bool Reuse>
void thread_pool(benchmark::State& state) {
  const int delay_ms = static_cast<int>(state.range(0));
  const int requests = requests_for(delay_ms);
  const std::string url = url_for(delay_ms);
  for (auto _ : state) {
    std::atomic<int> next{0};
    std::atomic<long long> ok{0};
    std::atomic<long long> connections{0};
    std::atomic<int> finished_threads{0};
    std::vector<std::thread> pool;
    sample s = measure(
        [&] {
          for (int t = 0; t < client_threads; ++t) {
            pool.emplace_back([&] {
              std::string body;
              CURL* kept = Reuse ? curl_easy_init() : nullptr;
              while (next.fetch_add(1, std::memory_order_relaxed) < requests) {
                CURL* easy = Reuse ? kept : curl_easy_init();
                if (perform_on(easy, url, body) == 200) ok.fetch_add(1, std::memory_order_relaxed);
                long made = 0;
                curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &made);
                connections.fetch_add(made, std::memory_order_relaxed);
                if (!Reuse) curl_easy_cleanup(easy);
              }
              if (Reuse) curl_easy_cleanup(kept);
              finished_threads.fetch_add(1, std::memory_order_release);
            });
          }
        },
        [&] { return finished_threads.load(std::memory_order_acquire) == client_threads; },
        [&] {
          for (std::thread& t : pool) t.join();
        });
    s.ok = ok.load();
    s.connections = connections.load();
    report(state, std::string(Reuse ? "threads_reuse/" : "threads_naive/") + std::to_string(delay_ms), requests, s);
  }
}

void threads_reuse(benchmark::State& state) { thread_pool<true>(state); }
void threads_naive(benchmark::State& state) { thread_pool<false>(state); }

// The third argument: 1 runs curl_client on curl_multi_poll instead of socket_action (for the loop's own cost).
BENCHMARK(curl_multi)
    ->Args({0, client_threads, 0})
    ->Args({0, 256, 0})
    ->Args({0, client_threads, 1})
    ->Args({0, 256, 1})
    ->Args({50, client_threads, 0})
    ->Args({50, 256, 0})
    ->Iterations(1)
    ->MeasureProcessCPUTime()
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(threads_reuse)
    ->Arg(0)
    ->Arg(50)
    ->Iterations(1)
    ->MeasureProcessCPUTime()
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(threads_naive)->Arg(0)->Iterations(1)->MeasureProcessCPUTime()->UseRealTime()->Unit(benchmark::kMillisecond);

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : (v.size() % 2 == 1 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2);
}

void print_summary() {
  struct row {
    double per_cpu = 0, per_wall = 0, rss = 0, vm = 0, ok = 0, served = 0, connections = 0;
  };
  std::map<std::string, row> rows;
  for (const auto& [name, list] : samples) {
    const int requests = requests_for(name.find("/50") != std::string::npos ? 50 : 0);
    std::vector<double> per_cpu, per_wall, rss, vm, ok, served, connections;
    for (const sample& s : list) {
      per_cpu.push_back(requests / s.cpu);
      per_wall.push_back(requests / s.wall);
      rss.push_back(s.peak_rss_mb);
      vm.push_back(s.peak_vm_mb);
      ok.push_back(static_cast<double>(s.ok));
      served.push_back(static_cast<double>(s.served));
      connections.push_back(static_cast<double>(s.connections));
    }
    rows[name] = {median(per_cpu), median(per_wall), median(rss),        median(vm),
                  median(ok),      median(served),   median(connections)};
  }
  std::printf("\n%d requests per run (%d with 50 ms server latency), %d client threads, medians of %zu run(s):\n",
              requests_per_run, slow_requests_per_run, client_threads,
              samples.empty() ? 0 : samples.begin()->second.size());
  std::printf("%-20s %12s %10s %13s %12s %10s %12s %12s\n", "", "req/CPU-s", "req/s", "peak RSS MB", "peak VM MB",
              "client ok", "server saw", "connections");
  for (const auto& [name, r] : rows) {
    std::printf("%-20s %12.0f %10.0f %13.1f %12.1f %10.0f %12.0f %12.0f\n", name.c_str(), r.per_cpu, r.per_wall, r.rss,
                r.vm, r.ok, r.served, r.connections);
  }
  const auto ratio = [&rows](const char* a, const char* b) {
    if (rows.count(a) == 0 || rows.count(b) == 0 || rows[b].per_cpu <= 0) return;
    std::printf(
        "%-18s / %-16s %5.2fx the requests per CPU second, %5.2fx the requests per second; peak VM +%.1f MB "
        "against +%.1f MB\n",
        a, b, rows[a].per_cpu / rows[b].per_cpu, rows[a].per_wall / rows[b].per_wall, rows[a].vm, rows[b].vm);
  };
  ratio("curl_multi/0/64", "threads_reuse/0");
  ratio("curl_multi/0/64", "curl_poll/0/64");
  ratio("curl_multi/0/256", "curl_poll/0/256");
  ratio("curl_multi/0/64", "threads_naive/0");
  ratio("curl_multi/50/64", "threads_reuse/50");
  ratio("curl_multi/50/256", "threads_reuse/50");
  std::printf(
      "(connections: libcurl's CURLINFO_NUM_CONNECTS summed; curl_client counts its own. The server's count "
      "is of the requests it answered, from its /_/stats)\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--requests=", 11) == 0) {
      requests_per_run = static_cast<int>(std::strtol(argv[i] + 11, nullptr, 10));
    } else if (std::strncmp(argv[i], "--slow-requests=", 16) == 0) {
      slow_requests_per_run = static_cast<int>(std::strtol(argv[i] + 16, nullptr, 10));
    } else if (std::strcmp(argv[i], "--no-memory-sampling") == 0) {
      sample_memory = false;
    } else if (std::strncmp(argv[i], "--server-threads=", 17) == 0) {
      server_threads = static_cast<int>(std::strtol(argv[i] + 17, nullptr, 10));
    } else {
      rest.push_back(argv[i]);
    }
  }
  int rest_count = static_cast<int>(rest.size());
  benchmark::Initialize(&rest_count, rest.data());
  if (benchmark::ReportUnrecognizedArguments(rest_count, rest.data())) return 1;
  curl_global_init(CURL_GLOBAL_DEFAULT);
  pollster_test::raise_open_file_limit(4096);
  pollster_test::server_process process(POLLSTER_HTTP_FAULT_SERVER,
                                        {"--threads", std::to_string(server_threads), "--lifetime", "3600"});
  server = &process;
  benchmark::RunSpecifiedBenchmarks();
  print_summary();
  server = nullptr;
  benchmark::Shutdown();
  curl_global_cleanup();
  return 0;
}
