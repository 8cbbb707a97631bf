// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstdint>
#include <string>

#include <boost/asio/ip/tcp.hpp>

namespace tc::broker::net {

/// Opens `acceptor` on address:port (reuse_address, the system's backlog): the client, the
/// WebSocket and their re-listen after the router service restarts all open the same way.
/// On failure the acceptor is left closed and the error returned.
boost::system::error_code listen_on(boost::asio::ip::tcp::acceptor& acceptor,
                                    const std::string& address, std::uint16_t port);

}  // namespace tc::broker::net
