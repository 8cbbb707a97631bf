// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <string_view>
#include <system_error>

#include <boost/system/error_code.hpp>

namespace tc::xmpp {

/// Errors of the wire layer. Each maps to an RFC 6120 stream or stanza condition.
enum class Errc {
  Ok = 0,
  NotWellFormed = 1,   ///< stream error <not-well-formed/>
  RestrictedXml,       ///< stream error <restricted-xml/>: DTD, entity declaration, PI, comment
  PolicyViolation,     ///< stream error <policy-violation/>: stanza size, depth or attributes
  InvalidNamespace,    ///< stream error <invalid-namespace/>
  JidMalformed,        ///< stanza error <jid-malformed/>
  NotAuthorized,       ///< SASL <not-authorized/>
  MalformedRequest,    ///< SASL <malformed-request/>
  InvalidAuthzid,      ///< SASL <invalid-authzid/>
  EncryptionRequired,  ///< SASL <encryption-required/>
};

const boost::system::error_category& xmpp_category() noexcept;

inline boost::system::error_code make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), xmpp_category()};
}

/// The RFC 6120 §4.9.3 stream-error condition element name for a parser error
/// ("not-well-formed", "restricted-xml", "policy-violation", ...). "internal-server-error"
/// for codes that are not stream errors.
std::string_view stream_condition(boost::system::error_code ec) noexcept;

}  // namespace tc::xmpp

namespace boost::system {
template <>
struct is_error_code_enum<tc::xmpp::Errc> : std::true_type {};
}  // namespace boost::system
