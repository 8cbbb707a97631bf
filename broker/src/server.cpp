// SPDX-License-Identifier: Apache-2.0
#include "broker/server.h"

#include <fstream>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include "storage/errc.h"
#include "storage/store.h"

#include "admin/admin_server.h"
#include "ha/cluster_view.h"
#include "ha/srm.h"
#include "net/component_link.h"
#include "net/listen.h"
#include "net/session.h"
#include "net/tokens.h"
#include "net/user_routing.h"
#include "net/websocket_listener.h"
#include "server_context.h"
#include "shard/shard.h"
#include "systemd_notify.h"

namespace tc::broker {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

std::shared_ptr<asio::ssl::context> make_tls_context(const Config& config) {
  if (config.tls_certificate.empty()) {
    return nullptr;
  }
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                   asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                   asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use);
  boost::system::error_code ec;
  ctx->use_certificate_chain_file(config.tls_certificate.string(), ec);
  if (ec) {
    throw ConfigError("tls.certificate",
                      "cannot load " + config.tls_certificate.string() + ": " + ec.message());
  }
  ctx->use_private_key_file(config.tls_private_key.string(), asio::ssl::context::pem, ec);
  if (ec) {
    throw ConfigError("tls.private_key",
                      "cannot load " + config.tls_private_key.string() + ": " + ec.message());
  }
  return ctx;
}

/// Opens the store and applies migrations, retrying with backoff while the database is
/// unreachable. Fatal (throws) for a schema that is too new or foreign, or a bad URL.
void prepare_store(const std::string& url, const std::atomic<bool>& stopping) {
  auto backoff = std::chrono::milliseconds(200);
  for (;;) {
    auto store = storage::open_store(url);
    Result<void> migrated = store ? (*store)->migrate() : Result<void>(store.error());
    if (migrated) {
      auto version = (*store)->schema_version();
      spdlog::info("store {} ({}) ready at schema version {}", storage::redact_url(url),
                   (*store)->backend(), version ? *version : -1);
      return;
    }
    const auto ec = migrated.error();
    if (ec == storage::Errc::SchemaTooNew) {
      throw std::runtime_error("the database at " + storage::redact_url(url) +
                               " has a schema newer than this tcbroker knows (version " +
                               std::to_string(storage::Store::latest_schema_version()) +
                               "); upgrade tcbroker before pointing it at this database");
    }
    if (ec != storage::Errc::Unavailable) {
      throw std::runtime_error("cannot prepare the database at " + storage::redact_url(url) + ": " +
                               ec.message());
    }
    if (stopping) {
      throw std::runtime_error("stopped while waiting for the database");
    }
    spdlog::error("database {} unavailable ({}); retrying in {} ms", storage::redact_url(url),
                  ec.message(), backoff.count());
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
  }
}

}  // namespace

struct Server::Impl {
  explicit Impl(Config c) { context.config = std::move(c); }

  net::Awaitable<void> accept_loop() {
    std::size_t next = 0;
    while (acceptor.is_open()) {
      Shard& shard = *shards[next++ % shards.size()];
      // No structured binding over a co_await result: GCC 12 then moves the socket out of
      // freed memory (docs/architecture.md, "Coroutine rules").
      auto accepted = co_await acceptor.async_accept(shard.context(), net::kAsTuple);
      auto ec = std::get<0>(accepted);
      auto socket = std::move(std::get<1>(accepted));
      if (ec) {
        if (ec == asio::error::operation_aborted) {
          co_return;
        }
        spdlog::warn("accept: {}", ec.message());
        // EMFILE and friends: do not spin.
        asio::steady_timer pause(control, std::chrono::milliseconds(50));
        co_await pause.async_wait(net::kAsTuple);
        continue;
      }
      ++context.metrics.connections_accepted;
      if (context.metrics.connections_open >= context.config.max_connections) {
        boost::system::error_code ignored;
        socket.close(ignored);
        continue;
      }
      socket.set_option(tcp::no_delay(true), ec);
      // Half-open connections of vanished clients: the kernel probes idle ones (the idle
      // timeout pings at the XMPP level on top).
      socket.set_option(asio::socket_base::keep_alive(true), ec);
      boost::system::error_code peer_ec;
      const auto peer = socket.remote_endpoint(peer_ec);
      auto session = std::make_shared<Session>(
          context, shard, std::make_shared<net::TcpTransport>(std::move(socket)));
      if (!peer_ec && peer.address() != asio::ip::make_address("127.0.0.1") &&
          peer.address() != asio::ip::make_address("::1")) {
        // 127.0.0.1 and ::1 are not counted: local tools, benchmarks, a proxy on this host.
        const std::string ip = peer.address().to_string();
        if (context.client_addresses.try_add(ip, context.config.max_connections_per_ip)) {
          session->count_address(ip);
        } else {
          ++context.metrics.refused_per_ip;
          spdlog::warn(
              "refusing a connection from {}: it has {} open (client.max_connections_per_ip)", ip,
              context.config.max_connections_per_ip);
          session->refuse("too many connections from your address (" +
                          std::to_string(context.config.max_connections_per_ip) + ")");
        }
      }
      asio::post(shard.executor(), [session] { session->start(); });
    }
  }

  void begin_shutdown() {
    if (context.shutting_down.exchange(true)) {
      return;
    }
    spdlog::info("shutting down");
    notifier.notify("STOPPING=1\nSTATUS=shutting down");
    if (srm && srm->clustered()) {
      // A clean stop hands this node's users and rooms to its peer first (Peer Reboot).
      srm->shutdown([this] { asio::post(control, [this] { finish_shutdown(); }); });
      return;
    }
    finish_shutdown();
  }

  void finish_shutdown() {
    if (admin) {
      admin->stop();
    }
    boost::system::error_code ignored;
    acceptor.close(ignored);
    if (websocket) {
      websocket->stop();
    }
    if (component) {
      component->stop();
    }
    auto close_sessions = [this] {
      for (const auto& s : context.router.all()) {
        s->close_with("system-shutdown", "the server is shutting down");
      }
      asio::co_spawn(control, drain(), asio::detached);
    };
    if (context.muc) {
      // Occupants hear 332 from their rooms before their streams close.
      // A short grace after the evictions: clients that read the 332 presences and the stream
      // error in one segment may drop the former when they handle the latter first.
      context.muc->shutdown([this, close_sessions] {
        asio::post(control, [this, close_sessions] {
          shutdown_grace.expires_after(kEvictionGrace);
          shutdown_grace.async_wait(
              [close_sessions](boost::system::error_code) { close_sessions(); });
        });
      });
    } else {
      close_sessions();
    }
  }

  net::Awaitable<void> drain() {
    // Give sessions a moment to flush their stream errors, bounded.
    asio::steady_timer timer(control);
    for (int i = 0; i < 40 && context.metrics.connections_open > 0; ++i) {
      timer.expires_after(std::chrono::milliseconds(50));
      co_await timer.async_wait(net::kAsTuple);
    }
    control.stop();
  }

  /// Keeps this node's row in tc_nodes fresh, so that tools (tc-merge) and the peer can see
  /// that its text-conference service runs.
  net::Awaitable<void> node_heartbeat() {
    asio::steady_timer timer(control);
    while (!context.shutting_down) {
      auto job = [row = node_row(true)](storage::Store& s) { return s.upsert_node(row); };
      auto written = co_await cluster_store().async_call(std::move(job), asio::use_awaitable);
      if (!written) {
        spdlog::warn("cannot refresh this node's registry row: {}", written.error().message());
      }
      timer.expires_after(kNodeHeartbeat);
      co_await timer.async_wait(net::kAsTuple);
    }
  }

  storage::NodeRecord node_row(bool running) const {
    return {context.config.node_name,
            running,
            std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count(),
            "",
            "",
            "",
            "",
            "",
            ""};
  }

  /// The router critical service: stopping it closes the listener and every client stream.
  void set_router(bool run) {
    boost::system::error_code ec;
    if (!run) {
      acceptor.close(ec);
      if (websocket) {
        websocket->stop();
      }
      if (component) {
        component->stop();
      }
      for (const auto& s : context.router.all()) {
        s->close_with("system-shutdown", "the router service was stopped on this node");
      }
      return;
    }
    if (acceptor.is_open() || context.shutting_down) {
      return;
    }
    if (websocket) {
      websocket->resume();
    }
    if (component) {
      component->resume();
    }
    ec = net::listen_on(acceptor, context.config.client_address, context.client_port_bound);
    if (ec) {
      spdlog::error("router: cannot listen again on port {}: {}", context.client_port_bound,
                    ec.message());
      return;
    }
    asio::co_spawn(control, accept_loop(), asio::detached);
  }

  /// SIGHUP: reads the configuration file again and applies what can change without a
  /// restart (the log level, the TLS certificate and key: new handshakes use them, open
  /// sessions keep theirs). A bad file changes nothing and says why.
  void reload() {
    const auto& current = context.config;
    if (current.file.empty()) {
      spdlog::warn("SIGHUP: started without a configuration file; nothing to reload");
      return;
    }
    notifier.notify("RELOADING=1\nSTATUS=reloading the configuration\nMONOTONIC_USEC=" +
                    std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(
                                       std::chrono::steady_clock::now().time_since_epoch())
                                       .count()));
    try {
      const Config fresh = load_config(current.file);
      auto tls = make_tls_context(fresh);
      spdlog::set_level(spdlog::level::from_str(fresh.log_level));
      context.set_tls_context(std::move(tls));
      std::vector<std::string> restart;
      auto differs = [&restart](bool changed, const char* name) {
        if (changed) {
          restart.emplace_back(name);
        }
      };
      differs(fresh.node_name != current.node_name, "node.name");
      differs(fresh.domain != current.domain, "node.domain");
      differs(fresh.client_address != current.client_address ||
                  fresh.client_port != current.client_port,
              "client.address/port");
      differs(fresh.storage_url != current.storage_url, "storage.url");
      differs(fresh.tls_required != current.tls_required, "tls.required");
      differs(fresh.websocket_enabled != current.websocket_enabled ||
                  fresh.websocket_port != current.websocket_port ||
                  fresh.websocket_address != current.websocket_address,
              "websocket.enabled/address/port");
      differs(fresh.conference_domain() != current.conference_domain(), "muc.domain");
      spdlog::info(
          "SIGHUP: configuration reloaded from {}: log level {}, TLS {}", current.file.string(),
          fresh.log_level,
          fresh.tls_certificate.empty() ? std::string("off") : fresh.tls_certificate.string());
      if (!restart.empty()) {
        std::string names;
        for (const auto& n : restart) {
          names += (names.empty() ? "" : ", ") + n;
        }
        spdlog::warn("SIGHUP: changed settings that take effect only after a restart: {}", names);
      }
    } catch (const std::exception& e) {
      spdlog::error("SIGHUP: configuration not reloaded, the running one stays: {}", e.what());
    }
    notifier.notify("READY=1\nSTATUS=" + status_line());
  }

  void wait_reload() {
    reload_signal.async_wait([this](boost::system::error_code ec, int) {
      if (ec || context.shutting_down) {
        return;
      }
      reload();
      wait_reload();
    });
  }

  /// WATCHDOG=1 at half systemd's timeout while every shard's event loop still runs tasks:
  /// a stuck shard withholds it and systemd restarts the node (its peer takes over first).
  net::Awaitable<void> watchdog(std::chrono::microseconds timeout) {
    asio::steady_timer timer(control);
    const auto period = timeout / 2;
    while (!context.shutting_down) {
      auto answered = std::make_shared<std::atomic<std::size_t>>(0);
      for (auto& shard : shards) {
        asio::post(shard->executor(), [answered] { ++*answered; });
      }
      timer.expires_after(period);
      co_await timer.async_wait(net::kAsTuple);
      if (context.shutting_down) {
        break;
      }
      if (*answered == shards.size()) {
        notifier.notify("WATCHDOG=1");
      } else {
        spdlog::warn(
            "watchdog: {} of {} shard(s) did not run a task within {} ms; not telling "
            "systemd we are alive",
            shards.size() - *answered, shards.size(),
            std::chrono::duration_cast<std::chrono::milliseconds>(period).count());
      }
    }
  }

  std::string status_line() const {
    return "serving " + context.config.domain + " on " + context.config.client_address + ":" +
           std::to_string(context.client_port_bound);
  }

  /// Users whose partition now lives on `endpoint` log in again there.
  void move_users(const std::string& partition, const std::string& endpoint) {
    const auto view = cluster->get();
    std::string node;
    for (const auto& [n, e] : view->client_endpoints) {
      if (e == endpoint) {
        node = n;
      }
    }
    std::size_t moved = 0;
    for (const auto& s : context.router.all()) {
      if (partition.empty() || s->moved_in() == partition) {
        s->close_moved(endpoint, context.relogin_text(node), context.relogin_xml());
        ++moved;
      }
    }
    if (moved > 0) {
      spdlog::info("moved {} session(s) {} to {}", moved,
                   partition.empty() ? std::string("of this node")
                                     : "that came here with partition " + partition,
                   endpoint.empty() ? "(nobody yet)" : endpoint);
    }
  }

  static constexpr auto kNodeHeartbeat = std::chrono::seconds(5);
  static constexpr auto kEvictionGrace = std::chrono::milliseconds(200);

  ServerContext context;
  asio::io_context control{1};
  std::unique_ptr<StoreWorker> control_store;
  std::unique_ptr<StoreWorker> control_cluster_store;  ///< null: the cluster's is the group's
  /// Cluster-wide state (tc_nodes, groups, settings): the cluster database's worker.
  StoreWorker& cluster_store() {
    return control_cluster_store ? *control_cluster_store : *control_store;
  }
  tcp::acceptor acceptor{control};
  asio::steady_timer shutdown_grace{control};
  asio::signal_set signals{control, SIGINT, SIGTERM};
  asio::signal_set reload_signal{control, SIGHUP};
  SystemdNotifier notifier;
  std::vector<std::unique_ptr<Shard>> shards;
  std::unique_ptr<ha::ClusterView> cluster;
  std::unique_ptr<ha::Srm> srm;
  std::unique_ptr<admin::AdminServer> admin;
  std::unique_ptr<net::WebSocketListener> websocket;  ///< null unless [websocket] enabled
  std::shared_ptr<net::ComponentLink> component;      ///< null unless [component] enabled
};

Server::Server(Config config) : impl_(std::make_unique<Impl>(std::move(config))) {}

Server::~Server() {
  for (auto& shard : impl_->shards) {
    shard->stop();
  }
  // Pending accepts on the control context hold sockets of the shards' contexts: finish them
  // (aborted) while those contexts still exist.
  boost::system::error_code ignored;
  impl_->acceptor.close(ignored);
  impl_->signals.cancel(ignored);
  impl_->reload_signal.cancel(ignored);
  impl_->admin.reset();
  impl_->websocket.reset();
  impl_->component.reset();  // its coroutines on the shards hold it until those contexts go
  impl_->srm.reset();
  impl_->control.restart();
  impl_->control.poll();
  // The rooms and their timers belong to the shards' io_contexts: destroy them first.
  impl_->context.muc.reset();
  impl_->control_store.reset();
  impl_->control_cluster_store.reset();
  impl_->shards.clear();
}

void Server::start() {
  auto& config = impl_->context.config;
  impl_->context.set_tls_context(make_tls_context(config));
  impl_->context.cpu =
      std::make_unique<CpuPool>(std::max<std::size_t>(1, std::thread::hardware_concurrency() / 2));
  impl_->context.login_throttle =
      std::make_unique<FailureThrottle>(config.auth_max_failures, config.auth_failure_window);
  prepare_store(config.storage_url, impl_->context.shutting_down);
  if (config.cluster_store_url() != config.storage_url) {
    prepare_store(config.cluster_store_url(), impl_->context.shutting_down);
  }

  int shard_count =
      config.shards > 0 ? config.shards : static_cast<int>(std::thread::hardware_concurrency());
  shard_count = std::max(shard_count, 1);
  for (int i = 0; i < shard_count; ++i) {
    impl_->shards.push_back(std::make_unique<Shard>(i, config.storage_url, config.cluster_url));
  }

  boost::system::error_code ec;
  (void)asio::ip::make_address(config.client_address, ec);
  if (ec) {
    throw ConfigError("client.address", "\"" + config.client_address + "\" is not an IP address");
  }
  ec = net::listen_on(impl_->acceptor, config.client_address, config.client_port);
  if (ec) {
    throw std::runtime_error("cannot listen on " + config.client_address + ":" +
                             std::to_string(config.client_port) + ": " + ec.message());
  }
  impl_->context.client_port_bound = client_port();

  std::vector<Shard*> shard_ptrs;
  for (auto& shard : impl_->shards) {
    shard_ptrs.push_back(shard.get());
  }
  impl_->context.muc =
      std::make_unique<muc::MucService>(impl_->context.config, shard_ptrs, impl_->context.router);
  impl_->control_store = std::make_unique<StoreWorker>(config.storage_url, "control-store");
  if (config.cluster_store_url() != config.storage_url) {
    impl_->control_cluster_store =
        std::make_unique<StoreWorker>(config.cluster_store_url(), "control-cluster");
  }

  // SRM: the redundancy group, leases and the state machine (docs/architecture.md).
  impl_->cluster = std::make_unique<ha::ClusterView>(config.node_name);
  impl_->context.cluster = impl_->cluster.get();
  ha::Srm::Hooks hooks;
  hooks.set_router = [this](bool run) { impl_->set_router(run); };
  hooks.move_users = [this](const std::string& p, const std::string& e) {
    impl_->move_users(p, e);
  };
  hooks.users_connected = [this] { return impl_->context.router.size(); };
  hooks.deliver_user = [this](const xmpp::XmlElement& stanza, const xmpp::Jid& to, bool bounce) {
    route_to_user(impl_->context, stanza, to, UserHop::Peer, bounce);
  };
  hooks.close_replaced = [this](const xmpp::Jid& full, const std::string& node) {
    if (auto s = impl_->context.router.find(full)) {
      s->close_with("conflict", "replaced by a new connection on " + node);
    }
  };
  impl_->srm = std::make_unique<ha::Srm>(impl_->control, impl_->context, *impl_->control_store,
                                         impl_->cluster_store(), *impl_->cluster, std::move(hooks));
  impl_->srm->configure();
  if (impl_->srm->clustered()) {
    impl_->context.muc->attach_cluster(*impl_->cluster, *impl_->srm, impl_->srm->park_timeout());
    impl_->context.router.attach_remote(impl_->srm.get());
  }
  if (!config.admin_token.empty() || !config.admin_token_file.empty()) {
    impl_->admin =
        std::make_unique<admin::AdminServer>(impl_->control.get_executor(), config, *impl_->srm);
    impl_->admin->start();
    impl_->context.admin_url =
        "http://" + config.admin_address + ":" + std::to_string(impl_->admin->port());
  } else {
    spdlog::info("admin API off: set admin.token or admin.token_file to enable it");
  }

  for (auto& shard : impl_->shards) {
    shard->start();
  }
  impl_->context.muc->start();
  impl_->srm->start();
  if (!impl_->srm->clustered()) {
    asio::co_spawn(impl_->control, impl_->node_heartbeat(), asio::detached);
  }
  asio::co_spawn(impl_->control, impl_->accept_loop(), asio::detached);
  if (config.component_enabled) {
    impl_->component = std::make_shared<net::ComponentLink>(impl_->context, *impl_->shards[0]);
    impl_->component->start();
  }
  if (config.websocket_enabled) {
    impl_->websocket =
        std::make_unique<net::WebSocketListener>(impl_->context, impl_->control, shard_ptrs);
    impl_->websocket->start();
  }
  impl_->signals.async_wait([this](boost::system::error_code e, int) {
    if (!e) {
      impl_->begin_shutdown();
    }
  });
  impl_->wait_reload();
  if (const auto timeout = impl_->notifier.watchdog_timeout()) {
    asio::co_spawn(impl_->control, impl_->watchdog(*timeout), asio::detached);
  }
  spdlog::info(
      "node {} serving {} (rooms at {}) on {}:{} with {} shard(s), TLS {}", config.node_name,
      config.domain, config.conference_domain(), config.client_address, client_port(), shard_count,
      impl_->context.tls_context() ? (config.tls_required ? "required" : "offered") : "off");
  impl_->notifier.notify("READY=1\nSTATUS=" + impl_->status_line());
}

void Server::run() {
  impl_->control.run();
  if (impl_->control_store) {
    // A clean stop says so, so that tools need not wait for the row to go stale.
    auto job = [row = impl_->node_row(false)](storage::Store& s) { return s.upsert_node(row); };
    impl_->cluster_store().call_blocking(std::move(job));
  }
  for (auto& shard : impl_->shards) {
    shard->stop();
  }
  spdlog::info("stopped");
}

void Server::stop() {
  asio::post(impl_->control, [this] { impl_->begin_shutdown(); });
}

std::uint16_t Server::client_port() const {
  boost::system::error_code ec;
  return impl_->acceptor.local_endpoint(ec).port();
}

void Server::write_ready_file(const std::filesystem::path& path) const {
  const auto tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << "{\"client_port\": " << client_port() << ", \"pid\": " << ::getpid()
        << ", \"admin_port\": " << (impl_->admin ? impl_->admin->port() : 0)
        << ", \"srm_port\": " << (impl_->srm ? impl_->srm->service_port() : 0)
        << ", \"websocket_port\": " << (impl_->websocket ? impl_->websocket->port() : 0) << "}\n";
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace tc::broker
