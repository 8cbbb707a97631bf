// SPDX-License-Identifier: Apache-2.0
#include "server_context.h"

#include "muc/muc_service.h"

namespace tc::broker {

ServerContext::ServerContext() = default;
ServerContext::~ServerContext() = default;

}  // namespace tc::broker
