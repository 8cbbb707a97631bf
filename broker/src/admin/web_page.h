// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <string_view>

namespace tc::broker::admin {

/// The single-file web page served at "/" without authentication: it asks for the admin
/// token, keeps it in sessionStorage and calls the API with it. No external resources.
std::string_view web_page();

}  // namespace tc::broker::admin
