// SPDX-License-Identifier: Apache-2.0
// tc-test-pg: a throwaway PostgreSQL for scripts.
//   tc-test-pg [start] [--database NAME] [--ignore-stdin]
// Prints the connection URL on the first line of stdout, then keeps the server running until
// stdin reaches EOF (unless --ignore-stdin) or SIGTERM / SIGINT / SIGHUP arrives; then stops the
// server and deletes its directory. Exit status 0 after a clean stop, 1 when it cannot start.
// From bash, stopping when the script exits (its end of the pipe closes):
//   coproc PG { tc-test-pg; }; read -r TC_TEST_PG_URL <&"${PG[0]}"; export TC_TEST_PG_URL
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <iostream>
#include <string>
#include <string_view>

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "pg_launcher.h"

namespace {

int usage() {
  std::cerr << "usage: tc-test-pg [start] [--database NAME] [--ignore-stdin]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  tc::test::PgLauncherOptions options;
  bool watch_stdin = true;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "start" && i == 1) {
      continue;
    }
    if (arg == "--database" && i + 1 < argc) {
      options.database = argv[++i];
    } else if (arg == "--ignore-stdin") {
      watch_stdin = false;
    } else {
      return usage();
    }
  }

  // Block the signals before anything starts so none is lost; they are read from a signalfd.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  sigprocmask(SIG_BLOCK, &signals, nullptr);
  const int sigfd = signalfd(-1, &signals, SFD_CLOEXEC);
  if (sigfd < 0) {
    std::cerr << "tc-test-pg: signalfd: " << std::strerror(errno) << "\n";
    return 1;
  }

  try {
    tc::test::PgLauncher pg(options);
    std::cout << pg.url() << std::endl;  // flushed: the caller reads one line and goes on

    pollfd fds[2] = {{sigfd, POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
    for (;;) {
      const int n = ::poll(fds, watch_stdin ? 2 : 1, -1);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n < 0 || (fds[0].revents & POLLIN) != 0) {
        break;
      }
      if (watch_stdin && fds[1].revents != 0) {
        char buf[256];
        const ssize_t got = ::read(STDIN_FILENO, buf, sizeof buf);
        if (got <= 0) {
          break;  // EOF (or error): the caller is gone
        }
      }
    }
    return 0;  // ~PgLauncher stops the server and removes the directory
  } catch (const std::exception& e) {
    std::cerr << "tc-test-pg: " << e.what() << "\n";
    return 1;
  }
}
