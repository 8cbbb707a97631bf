// SPDX-License-Identifier: Apache-2.0
#include "xmpp/jid.h"

#include <cstdlib>
#include <optional>

#include <arpa/inet.h>
#include <stringprep.h>

#include "xmpp/errc.h"

#include "utf8.h"

namespace tc::xmpp {
namespace {

// RFC 7622 §3.1: each part is at most 1023 bytes once prepared.
constexpr std::size_t kMaxPartBytes = 1023;
// Input bound before preparation, so that stringprep never runs on megabytes. Mapping to
// nothing can shrink a part, but a part four times over the limit is not worth serving.
constexpr std::size_t kMaxRawPartBytes = 4 * kMaxPartBytes;
// RFC 1035 §2.3.4.
constexpr std::size_t kMaxLabelBytes = 63;

bool is_ascii(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) {
      return false;
    }
  }
  return true;
}

char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : c;
}

// Runs a libidn stringprep profile ("Nodeprep", "Nameprep", "Resourceprep", "SASLprep").
// Unassigned code points are allowed (RFC 3454 §7, "queries").
std::optional<std::string> run_profile(std::string_view in, const char* profile) {
  if (!detail::is_valid_utf8(in) || in.find('\0') != std::string_view::npos) {
    return std::nullopt;
  }
  const std::string terminated(in);
  char* prepared = nullptr;
  const int rc = stringprep_profile(terminated.c_str(), &prepared, profile,
                                    static_cast<Stringprep_profile_flags>(0));
  if (rc != STRINGPREP_OK || prepared == nullptr) {
    std::free(prepared);
    return std::nullopt;
  }
  std::string out(prepared);
  std::free(prepared);
  return out;
}

boost::system::error_code malformed() {
  return make_error_code(Errc::JidMalformed);
}

// Nodeprep (RFC 3920 Appendix A, as RFC 7622 §3.3 profiles the localpart), then the
// characters RFC 7622 §3.3.1 forbids in a localpart.
Result<std::string> prep_local(std::string_view in) {
  if (in.empty() || in.size() > kMaxRawPartBytes) {
    return malformed();
  }
  std::string out;
  if (is_ascii(in)) {
    // Fast path with libidn's result for ASCII: B.2 folds case; C.1.1 (space) and C.2.1
    // (controls) are prohibited.
    out.resize(in.size());
    for (std::size_t i = 0; i < in.size(); ++i) {
      const char c = in[i];
      if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7F) {
        return malformed();
      }
      out[i] = ascii_lower(c);
    }
  } else {
    auto prepared = run_profile(in, "Nodeprep");
    if (!prepared) {
      return malformed();
    }
    out = std::move(*prepared);
  }
  if (out.empty() || out.size() > kMaxPartBytes ||
      out.find_first_of("\"&'/:<>@") != std::string::npos) {
    return malformed();
  }
  return out;
}

Result<std::string> prep_resource(std::string_view in) {
  if (in.empty() || in.size() > kMaxRawPartBytes) {
    return malformed();
  }
  std::string out;
  if (is_ascii(in)) {
    // Resourceprep maps no ASCII character and prohibits only the controls (C.2.1).
    for (char c : in) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
        return malformed();
      }
    }
    out.assign(in);
  } else {
    auto prepared = run_profile(in, "Resourceprep");
    if (!prepared) {
      return malformed();
    }
    out = std::move(*prepared);
  }
  if (out.empty() || out.size() > kMaxPartBytes) {
    return malformed();
  }
  return out;
}

// RFC 3986 §3.2.2 IP-literal, IPv6 only ("[::1]").
Result<std::string> prep_ip_literal(std::string_view in) {
  if (in.size() < 3 || in.back() != ']' || in.size() > 64) {
    return malformed();
  }
  std::string inner(in.substr(1, in.size() - 2));
  in6_addr addr{};
  if (inet_pton(AF_INET6, inner.c_str(), &addr) != 1) {
    return malformed();
  }
  std::string out(in);
  for (char& c : out) {
    c = ascii_lower(c);
  }
  return out;
}

// RFC 7622 §3.2: the domainpart. An IP literal, or a host name run through nameprep,
// lower-cased, with one trailing dot stripped, every label non-empty and every ASCII
// character a letter, digit or hyphen (RFC 1123 §2.1).
Result<std::string> prep_domain(std::string_view in) {
  if (in.empty() || in.size() > kMaxRawPartBytes) {
    return malformed();
  }
  if (in.front() == '[') {
    return prep_ip_literal(in);
  }
  std::string out;
  if (is_ascii(in)) {
    out.resize(in.size());
    for (std::size_t i = 0; i < in.size(); ++i) {
      out[i] = ascii_lower(in[i]);
    }
  } else {
    // RFC 3490 §3.1: U+3002, U+FF0E and U+FF61 separate labels like a full stop.
    std::string mapped;
    mapped.reserve(in.size());
    for (std::size_t i = 0; i < in.size(); ++i) {
      const std::string_view rest = in.substr(i);
      if (rest.starts_with("\xE3\x80\x82") || rest.starts_with("\xEF\xBC\x8E") ||
          rest.starts_with("\xEF\xBD\xA1")) {
        mapped += '.';
        i += 2;
      } else {
        mapped += in[i];
      }
    }
    auto prepared = run_profile(mapped, "Nameprep");
    if (!prepared) {
      return malformed();
    }
    out = std::move(*prepared);
  }
  if (!out.empty() && out.back() == '.') {
    out.pop_back();
  }
  if (out.empty() || out.size() > kMaxPartBytes) {
    return malformed();
  }
  std::size_t label_start = 0;
  while (label_start <= out.size()) {
    std::size_t label_end = out.find('.', label_start);
    if (label_end == std::string::npos) {
      label_end = out.size();
    }
    const std::string_view label(out.data() + label_start, label_end - label_start);
    if (label.empty() || label.front() == '-' || label.back() == '-') {
      return malformed();
    }
    bool ascii_label = true;
    for (char c : label) {
      const auto u = static_cast<unsigned char>(c);
      if (u >= 0x80) {
        ascii_label = false;
      } else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
        return malformed();
      }
    }
    if (ascii_label && label.size() > kMaxLabelBytes) {
      return malformed();
    }
    label_start = label_end + 1;
  }
  return out;
}

}  // namespace

Result<Jid> Jid::parse(std::string_view text) {
  // RFC 7622 §3.1: the resourcepart starts after the first slash, the localpart ends at the
  // first at-sign before it; a separator with nothing on one side is malformed.
  std::string_view rest = text;
  std::string_view resource;
  bool has_resource = false;
  if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
    resource = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
    has_resource = true;
  }
  std::string_view local;
  bool has_local = false;
  if (const auto at = rest.find('@'); at != std::string_view::npos) {
    local = rest.substr(0, at);
    rest = rest.substr(at + 1);
    has_local = true;
  }
  if ((has_local && local.empty()) || (has_resource && resource.empty()) || rest.empty()) {
    return malformed();
  }
  return from_parts(local, rest, resource);
}

Result<Jid> Jid::from_parts(std::string_view local, std::string_view domain,
                            std::string_view resource) {
  Jid jid;
  if (!local.empty()) {
    auto l = prep_local(local);
    if (!l) {
      return l.error();
    }
    jid.local_ = std::move(*l);
  }
  auto d = prep_domain(domain);
  if (!d) {
    return d.error();
  }
  jid.domain_ = std::move(*d);
  if (!resource.empty()) {
    auto r = prep_resource(resource);
    if (!r) {
      return r.error();
    }
    jid.resource_ = std::move(*r);
  }
  return jid;
}

Jid Jid::bare() const {
  Jid b;
  b.local_ = local_;
  b.domain_ = domain_;
  return b;
}

Result<Jid> Jid::with_resource(std::string_view resource) const {
  if (empty()) {
    return malformed();
  }
  auto r = prep_resource(resource);
  if (!r) {
    return r.error();
  }
  Jid j = bare();
  j.resource_ = std::move(*r);
  return j;
}

std::string Jid::str() const {
  std::string out = bare_str();
  if (!resource_.empty()) {
    out.reserve(out.size() + 1 + resource_.size());
    out += '/';
    out += resource_;
  }
  return out;
}

std::string Jid::bare_str() const {
  if (local_.empty()) {
    return domain_;
  }
  std::string out;
  out.reserve(local_.size() + 1 + domain_.size() + 1 + resource_.size());
  out += local_;
  out += '@';
  out += domain_;
  return out;
}

Result<std::string> nodeprep(std::string_view in) {
  return prep_local(in);
}

// The whole RFC 7622 §3.2 domainpart preparation, not just the nameprep profile.
Result<std::string> nameprep(std::string_view in) {
  return prep_domain(in);
}

Result<std::string> resourceprep(std::string_view in) {
  return prep_resource(in);
}

Result<std::string> saslprep(std::string_view in) {
  // RFC 4013: printable ASCII is left alone, ASCII controls are prohibited (C.2.1).
  bool printable_ascii = true;
  for (char c : in) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7F) {
      printable_ascii = false;
      break;
    }
  }
  if (printable_ascii) {
    return std::string(in);
  }
  auto prepared = run_profile(in, "SASLprep");
  if (!prepared) {
    return make_error_code(Errc::MalformedRequest);
  }
  return std::move(*prepared);
}

}  // namespace tc::xmpp
