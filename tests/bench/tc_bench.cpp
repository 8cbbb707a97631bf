// SPDX-License-Identifier: Apache-2.0
// tc-bench: load generator for tcbroker (DESIGN.md). N clients join R rooms of O occupants;
// S senders per room send groupchat messages, closed loop (--window in flight) or at a fixed
// --rate. Reports commit latency (send -> reflection at the sender, which the server sends only
// after the durable commit), delivery latency (send -> arrival at the other occupants),
// throughput and losses. Exit status: 0 when every message was committed and delivered, 1 when
// anything was lost or refused, 2 when the run could not be set up.
#include <algorithm>
#include <atomic>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <signal.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "bench_client.h"
#include "bench_plan.h"
#include "broker_process.h"

namespace tc::bench {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace std::chrono_literals;

constexpr auto kPollInterval = 10ms;
constexpr auto kShutdownGrace = 10s;

/// Set by SIGINT/SIGTERM: the run stops early and is reported (as failed) rather than lost.
std::atomic<bool> g_interrupted{false};

extern "C" void on_interrupt(int) {
  g_interrupted.store(true);
}

void install_interrupt_handlers() {
  struct sigaction action {};
  action.sa_handler = on_interrupt;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);
}

/// Options that shape the process around the run rather than the load itself.
struct ToolOptions {
  bool spawn = false;
  std::string broker;
  std::string store = "sqlite";
  int broker_shards = 0;
  std::string broker_log_level = "warn";
  bool keep_temp = false;
  bool json = false;
  pid_t server_pid = 0;
};

/// One I/O thread: its io_context, its clients and its statistics.
struct IoThread {
  IoThread() : io(1), guard(asio::make_work_guard(io)) {}
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> guard;
  ThreadStats stats;
  std::vector<std::unique_ptr<BenchClient>> clients;
  std::thread thread;
};

struct RunOutcome {
  json::object report;
  bool ok = false;
  bool setup_ok = false;
};

struct RethrowOnError {
  void operator()(const std::exception_ptr& e) const {
    if (e) {
      std::rethrow_exception(e);
    }
  }
};

/// Logs in the clients of one thread, `stride` at a time.
asio::awaitable<void> setup_worker(IoThread& t, SharedCounters& shared, std::size_t first,
                                   std::size_t stride) {
  for (std::size_t i = first; i < t.clients.size(); i += stride) {
    BenchClient& client = *t.clients[i];
    const auto done = co_await client.setup();
    if (!done) {
      const std::string why =
          client.failure_detail().empty() ? done.error().message() : client.failure_detail();
      ++t.stats.errors["setup " + client.failed_step() + ": " + why];
      shared.setup_failed.fetch_add(1, std::memory_order_relaxed);
      client.close();
    }
    shared.setup_remaining.fetch_sub(1, std::memory_order_relaxed);
  }
}

double seconds_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

/// Scheduler accounting of a process, summed over its threads (/proc/PID/task/*/schedstat):
/// time on a CPU and time runnable but waiting for one. On a shared machine the wait shows
/// how much of the latency is other people's work rather than ours or the server's.
struct SchedSample {
  double run_s = 0;
  double wait_s = 0;
};

SchedSample sched_sample(pid_t pid) {
  SchedSample sample;
  const std::filesystem::path tasks =
      std::filesystem::path("/proc") / (pid > 0 ? std::to_string(pid) : "self") / "task";
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator(tasks, ec)) {
    std::ifstream in(task.path() / "schedstat");
    std::uint64_t run_ns = 0;
    std::uint64_t wait_ns = 0;
    if (in >> run_ns >> wait_ns) {
      sample.run_s += static_cast<double>(run_ns) / 1e9;
      sample.wait_s += static_cast<double>(wait_ns) / 1e9;
    }
  }
  return sample;
}

/// The 1-minute load average, or -1 when unknown.
double load_average() {
  std::ifstream in("/proc/loadavg");
  double one = -1;
  in >> one;
  return one;
}

double round3(double v) {
  return std::round(v * 1000.0) / 1000.0;
}

/// Closes every client on its own thread, lets the coroutines finish and joins the threads.
void stop_threads(std::vector<std::unique_ptr<IoThread>>& threads) {
  for (auto& t : threads) {
    IoThread* raw = t.get();
    asio::post(raw->io, [raw] {
      for (auto& c : raw->clients) {
        c->close();
      }
    });
    raw->guard.reset();
  }
  const auto deadline = Clock::now() + kShutdownGrace;
  for (auto& t : threads) {
    while (!t->io.stopped() && Clock::now() < deadline) {
      std::this_thread::sleep_for(kPollInterval);
    }
    t->io.stop();  // anything still pending is abandoned, not waited for
    t->thread.join();
  }
}

RunOutcome run_bench(const BenchOptions& options, const asio::ip::tcp::endpoint& endpoint,
                     pid_t server_pid) {
  const Plan plan(options);
  SharedCounters shared;
  RunContext run{options, plan, shared, endpoint};

  std::vector<std::unique_ptr<IoThread>> threads;
  for (std::size_t i = 0; i < options.threads; ++i) {
    threads.push_back(std::make_unique<IoThread>());
  }
  for (std::size_t c = 0; c < plan.clients(); ++c) {
    IoThread& t = *threads[c % threads.size()];
    t.clients.push_back(std::make_unique<BenchClient>(run, t.stats, t.io.get_executor(), c));
  }

  // Connect and join.
  shared.setup_remaining = plan.clients();
  const SchedSample bench_began = sched_sample(0);
  const double load_before = load_average();
  const auto setup_began = Clock::now();
  const std::size_t stride = std::max<std::size_t>(1, options.connect_concurrency / threads.size());
  for (auto& t : threads) {
    for (std::size_t w = 0; w < stride && w < t->clients.size(); ++w) {
      asio::co_spawn(t->io, setup_worker(*t, shared, w, stride), RethrowOnError{});
    }
    IoThread* raw = t.get();
    t->thread = std::thread([raw] { raw->io.run(); });
  }
  const auto setup_deadline =
      setup_began + std::chrono::duration_cast<Clock::duration>(
                        std::chrono::duration<double>(options.setup_timeout_s));
  while (shared.setup_remaining.load() > 0 && Clock::now() < setup_deadline &&
         !g_interrupted.load()) {
    std::this_thread::sleep_for(kPollInterval);
  }
  const auto setup_ended = Clock::now();
  const SchedSample bench_setup_ended = sched_sample(0);
  SchedSample server_run_began;
  if (server_pid > 0) {
    server_run_began = sched_sample(server_pid);
  }
  const bool setup_incomplete = shared.setup_remaining.load() > 0;
  const bool setup_timed_out = setup_incomplete && !g_interrupted.load();
  const bool setup_ok = !setup_incomplete && shared.setup_failed.load() == 0;

  // Send, then drain: wait until every message is acknowledged and delivered, giving up when
  // something is outstanding and nothing has arrived for drain_timeout_s.
  bool timed_out = false;
  Clock::time_point ended = setup_ended;
  if (setup_ok) {
    run.start = Clock::now();
    for (auto& t : threads) {
      IoThread* raw = t.get();
      asio::post(raw->io, [raw] {
        for (auto& c : raw->clients) {
          c->start_sending();
        }
      });
    }
    const auto drain_timeout = std::chrono::duration<double>(options.drain_timeout_s);
    const auto stop_at = run.start + std::chrono::duration_cast<Clock::duration>(
                                         std::chrono::duration<double>(options.duration_s));
    std::uint64_t last_progress = 0;
    auto last_progress_at = run.start;
    while (true) {
      std::this_thread::sleep_for(kPollInterval);
      const auto now = Clock::now();
      if (options.duration_s > 0 && now >= stop_at) {
        shared.stop_sending = true;
      }
      if (const auto p = shared.progress.load(); p != last_progress) {
        last_progress = p;
        last_progress_at = now;
      }
      const bool outstanding = shared.in_flight.load() > 0 ||
                               shared.deliveries.load() < shared.expected_deliveries.load();
      if (!outstanding && shared.senders_active.load() == 0) {
        break;
      }
      if (g_interrupted.load()) {
        break;
      }
      if (outstanding && now - last_progress_at > drain_timeout) {
        timed_out = true;
        break;
      }
    }
    shared.stop_sending = true;
    ended = Clock::now();
  }
  const SchedSample bench_ended = sched_sample(0);
  const SchedSample server_ended = server_pid > 0 ? sched_sample(server_pid) : SchedSample{};
  stop_threads(threads);

  // Exact figures, now that no thread writes any more.
  ThreadStats total;
  std::uint64_t expected = 0;
  std::uint64_t unacknowledged = 0;
  for (auto& t : threads) {
    total.merge(t->stats);
    for (const auto& c : t->clients) {
      for (const auto& s : c->stream_totals()) {
        expected += s.committed * (plan.occupants() - 1);
        unacknowledged += s.sent - s.committed - s.refused;
      }
    }
  }
  if (setup_timed_out) {
    ++total.errors["setup timed out (" + std::to_string(shared.setup_remaining.load()) +
                   " clients not ready)"];
  }
  if (timed_out) {
    ++total.errors["drain timed out"];
  }
  if (g_interrupted.load()) {
    ++total.errors["interrupted"];
  }

  json::object report;
  json::object config;
  config["clients"] = plan.clients();
  config["rooms"] = plan.rooms();
  config["occupants"] = plan.occupants();
  config["senders"] = plan.senders();
  if (options.duration_s > 0) {
    config["duration_s"] = options.duration_s;
  } else {
    config["messages"] = options.messages;
  }
  config["rate"] = options.rate;
  config["window"] = options.window;
  config["body_bytes"] = options.body_bytes;
  config["threads"] = options.threads;
  report["config"] = std::move(config);

  // The machine the run shared: a busy one explains long run-queue waits.
  json::object host;
  host["cpus"] = std::thread::hardware_concurrency();
  host["loadavg_1m_before"] = load_before;
  host["loadavg_1m_after"] = load_average();
  report["host"] = std::move(host);

  json::object setup;
  setup["clients"] = plan.clients();
  setup["failed"] = shared.setup_failed.load();
  setup["seconds"] = round3(seconds_between(setup_began, setup_ended));
  setup["connect_join_ms"] = total.setup.summary_ms();
  setup["bench_cpu_s"] = round3(bench_setup_ended.run_s - bench_began.run_s);
  report["setup"] = std::move(setup);

  json::object messages;
  messages["sent"] = total.sent;
  messages["committed"] = total.committed;
  messages["refused"] = total.refused;
  messages["unacknowledged"] = unacknowledged;
  report["messages"] = std::move(messages);

  json::object deliveries;
  deliveries["expected"] = expected;
  deliveries["delivered"] = total.delivered;
  deliveries["missing"] =
      static_cast<std::int64_t>(expected) - static_cast<std::int64_t>(total.delivered);
  deliveries["out_of_order"] = total.out_of_order;
  deliveries["unexpected"] = total.unexpected;
  report["deliveries"] = std::move(deliveries);

  json::object throughput;
  if (setup_ok) {
    const double run_s = seconds_between(run.start, ended);
    const double commit_s = total.committed > 0 ? seconds_between(run.start, total.last_commit) : 0;
    const double deliver_s =
        total.delivered > 0 ? seconds_between(run.start, total.last_delivery) : 0;
    throughput["seconds"] = round3(run_s);
    // CPU used per second of the run, and time spent runnable but without a CPU. A bench
    // near 1.0 CPU per I/O thread may itself be the limit; large waits mean a busy machine.
    const auto per_s = [&](double v) { return run_s > 0 ? round3(v / run_s) : 0.0; };
    throughput["bench_cpu_per_s"] = per_s(bench_ended.run_s - bench_setup_ended.run_s);
    throughput["bench_runqueue_wait_per_s"] = per_s(bench_ended.wait_s - bench_setup_ended.wait_s);
    if (server_pid > 0) {
      throughput["server_cpu_per_s"] = per_s(server_ended.run_s - server_run_began.run_s);
      throughput["server_runqueue_wait_per_s"] =
          per_s(server_ended.wait_s - server_run_began.wait_s);
    }
    throughput["committed_per_s"] =
        commit_s > 0 ? std::round(static_cast<double>(total.committed) / commit_s) : 0.0;
    throughput["delivered_per_s"] =
        deliver_s > 0 ? std::round(static_cast<double>(total.delivered) / deliver_s) : 0.0;
  }
  report["throughput"] = std::move(throughput);

  json::object latency;
  latency["commit"] = total.commit.summary_ms();
  latency["delivery"] = total.delivery.summary_ms();
  report["latency_ms"] = std::move(latency);

  json::object errors;
  std::uint64_t error_count = 0;
  for (const auto& [kind, n] : total.errors) {
    errors[kind] = n;
    error_count += n;
  }
  report["errors"] = std::move(errors);

  RunOutcome outcome;
  outcome.setup_ok = setup_ok;
  outcome.ok = setup_ok && !timed_out && error_count == 0 && unacknowledged == 0 &&
               total.refused == 0 && total.unexpected == 0 && total.delivered == expected &&
               total.committed == total.sent;
  outcome.report = std::move(report);
  return outcome;
}

asio::ip::tcp::endpoint resolve(const std::string& host, std::uint16_t port) {
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(host, ec);
  if (!ec) {
    return {address, port};
  }
  asio::io_context io;
  asio::ip::tcp::resolver resolver(io);
  const auto results = resolver.resolve(host, std::to_string(port));  // throws: a start-up edge
  return *results.begin();
}

/// Many connections need many descriptors; take what the hard limit allows.
void raise_descriptor_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
}

std::string store_kind(const std::string& store) {
  const auto colon = store.find(':');
  return colon == std::string::npos ? store : store.substr(0, colon);
}

/// JSON text like json::serialize, but with doubles in their shortest plain form ("25.938"
/// rather than "2.5938E1"), which people read more easily.
void write_json(std::string& out, const json::value& v) {
  switch (v.kind()) {
    case json::kind::double_: {
      const double d = v.get_double();
      if (!std::isfinite(d)) {
        out += "null";
        return;
      }
      char buffer[64];
      const auto r = std::to_chars(buffer, buffer + sizeof buffer, d, std::chars_format::fixed);
      out.append(buffer, r.ptr);
      return;
    }
    case json::kind::object: {
      out += '{';
      bool first = true;
      for (const auto& [key, value] : v.get_object()) {
        out += first ? "" : ",";
        first = false;
        out += json::serialize(json::value(key));
        out += ':';
        write_json(out, value);
      }
      out += '}';
      return;
    }
    case json::kind::array: {
      out += '[';
      bool first = true;
      for (const auto& value : v.get_array()) {
        out += first ? "" : ",";
        first = false;
        write_json(out, value);
      }
      out += ']';
      return;
    }
    default:
      out += json::serialize(v);
  }
}

std::string to_json(const json::value& v) {
  std::string out;
  write_json(out, v);
  return out;
}

void print_latency(const char* name, const json::object& s) {
  if (s.at("count").as_uint64() == 0) {
    std::printf("  %-9s no samples\n", name);
    return;
  }
  std::printf("  %-9s p50 %8.3f  p90 %8.3f  p99 %8.3f  max %8.3f ms  (%llu samples)\n", name,
              s.at("p50").as_double(), s.at("p90").as_double(), s.at("p99").as_double(),
              s.at("max").as_double(), static_cast<unsigned long long>(s.at("count").as_uint64()));
}

void print_human(const json::object& r, bool ok) {
  const auto& setup = r.at("setup").as_object();
  const auto& messages = r.at("messages").as_object();
  const auto& deliveries = r.at("deliveries").as_object();
  const auto& throughput = r.at("throughput").as_object();
  const auto& latency = r.at("latency_ms").as_object();
  std::cout << "host:       " << to_json(r.at("host")) << "\n"
            << "setup:      " << to_json(setup) << "\n"
            << "messages:   " << to_json(messages) << "\n"
            << "deliveries: " << to_json(deliveries) << "\n"
            << "throughput: " << to_json(throughput) << "\n";
  print_latency("commit", latency.at("commit").as_object());
  print_latency("delivery", latency.at("delivery").as_object());
  if (const auto& errors = r.at("errors").as_object(); !errors.empty()) {
    std::cout << "errors:     " << to_json(errors) << "\n";
  }
  if (const auto* broker = r.if_contains("broker")) {
    std::cout << "broker:     " << to_json(*broker) << "\n";
  }
  std::cout << (ok ? "OK" : "FAILED") << std::endl;
}

int run_main(int argc, char** argv) {
  BenchOptions o;
  ToolOptions tool;
#ifdef TC_BENCH_DEFAULT_BROKER
  tool.broker = TC_BENCH_DEFAULT_BROKER;
#endif
  CLI::App app{"tc-bench: load generator and benchmark for tcbroker"};
  app.add_option("--host", o.host, "server address")->capture_default_str();
  app.add_option("--port", o.port, "client port")->capture_default_str();
  app.add_flag("--spawn", tool.spawn,
               "start a tcbroker (--broker) with a generated config, stop it at the end");
  app.add_option("--broker", tool.broker, "tcbroker executable for --spawn")->capture_default_str();
  app.add_option("--store", tool.store, "with --spawn: sqlite (temporary file) or a storage URL")
      ->capture_default_str();
  app.add_option("--broker-shards", tool.broker_shards, "with --spawn: [node] shards (0 = cores)");
  app.add_option("--broker-log-level", tool.broker_log_level, "with --spawn: [log] level")
      ->capture_default_str();
  app.add_flag("--keep-temp", tool.keep_temp, "with --spawn: keep the server's directory");
  app.add_option("--domain", o.domain, "XMPP domain")->capture_default_str();
  app.add_option("--muc-domain", o.muc_domain, "conference domain (default conference.DOMAIN)");
  app.add_option("-n,--clients", o.clients, "connections (0 = rooms x occupants)")
      ->capture_default_str();
  app.add_option("-r,--rooms", o.rooms, "rooms")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("-o,--occupants", o.occupants, "occupants per room")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("-s,--senders", o.senders, "senders per room")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  auto* messages =
      app.add_option("-m,--messages", o.messages, "messages per sender")->capture_default_str();
  app.add_option("-d,--duration", o.duration_s, "send for SEC seconds instead of --messages")
      ->excludes(messages)
      ->check(CLI::PositiveNumber);
  app.add_option("--rate", o.rate, "messages/s per sender; 0 = closed loop with --window")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("-w,--window", o.window, "closed loop: messages in flight per sender")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--body-bytes", o.body_bytes, "body length (at least the header)")
      ->capture_default_str();
  app.add_flag("--register", o.register_accounts,
               "create the accounts with XEP-0077 in-band registration (implied by --spawn)");
  app.add_option("--user-prefix", o.user_prefix, "accounts are PREFIX0, PREFIX1, ...")
      ->capture_default_str();
  app.add_option("--room-prefix", o.room_prefix, "rooms are PREFIX0@conference..., ...")
      ->capture_default_str();
  app.add_option("--password", o.password, "password of every account")->capture_default_str();
  app.add_option("--threads", o.threads, "I/O threads")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  app.add_option("--connect-concurrency", o.connect_concurrency, "logins in progress at once")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--setup-timeout", o.setup_timeout_s, "seconds for every client to join")
      ->capture_default_str();
  app.add_option("--drain-timeout", o.drain_timeout_s,
                 "give up when something is outstanding and nothing arrives for SEC seconds")
      ->capture_default_str();
  app.add_option("--server-pid", tool.server_pid,
                 "without --spawn: the server's pid, to report its CPU use and run-queue wait");
  app.add_flag("--json", tool.json, "print one JSON object instead of a summary");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  const std::size_t clients = o.clients == 0 ? o.rooms * o.occupants : o.clients;
  if (o.senders > o.occupants) {
    std::cerr << "tc-bench: --senders must not exceed --occupants\n";
    return 2;
  }
  if (o.occupants > clients) {
    std::cerr << "tc-bench: --clients must be at least --occupants (one slot per room each)\n";
    return 2;
  }
  if (tool.spawn && tool.broker.empty()) {
    std::cerr << "tc-bench: --spawn needs --broker PATH\n";
    return 2;
  }

  raise_descriptor_limit();
  install_interrupt_handlers();
  std::optional<BrokerProcess> broker;
  if (tool.spawn) {
    BrokerProcessOptions bo;
    bo.broker = tool.broker;
    bo.store = tool.store;
    bo.domain = o.domain;
    bo.shards = tool.broker_shards;
    bo.max_room_users = o.occupants;
    bo.log_level = tool.broker_log_level;
    bo.keep_dir = tool.keep_temp;
    try {
      broker.emplace(std::move(bo));
    } catch (const BrokerError& e) {
      std::cerr << "tc-bench: " << e.what() << "\n";
      return 2;
    }
    o.host = "127.0.0.1";
    o.port = static_cast<std::uint16_t>(broker->client_port());
    o.register_accounts = true;
  }

  RunOutcome outcome =
      run_bench(o, resolve(o.host, o.port), broker ? broker->pid() : tool.server_pid);
  bool ok = outcome.ok;
  if (broker) {
    json::object b;
    b["store"] = store_kind(tool.store);
    if (tool.keep_temp) {
      b["dir"] = broker->dir().string();
    }
    const int status = broker->stop();
    b["exit_status"] = status;
    // A server that does not stop cleanly after a benchmark is a finding too.
    if (status != 0) {
      ok = false;
      std::cerr << "tc-bench: tcbroker exited with status " << status << "\n"
                << broker->log_tail() << "\n";
    }
    outcome.report["broker"] = std::move(b);
  }
  outcome.report["ok"] = ok;
  if (tool.json) {
    std::cout << to_json(outcome.report) << std::endl;
  } else {
    print_human(outcome.report, ok);
  }
  if (!ok && broker && outcome.setup_ok) {
    std::cerr << "tc-bench: server log tail:\n" << broker->log_tail(2048) << "\n";
  }
  if (!outcome.setup_ok) {
    return 2;
  }
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace tc::bench

int main(int argc, char** argv) {
  try {
    return tc::bench::run_main(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "tc-bench: " << e.what() << "\n";
    return 2;
  }
}
