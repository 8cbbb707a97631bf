// SPDX-License-Identifier: Apache-2.0
#include "xmpp/errc.h"

#include <string>

namespace tc::xmpp {
namespace {

// boost::system::error_category has a protected non-virtual destructor by design (categories
// are never deleted through a base pointer); GCC's -Wnon-virtual-dtor cannot tell.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class XmppCategory final : public boost::system::error_category {
 public:
  static const XmppCategory& instance() {
    static const XmppCategory category;
    return category;
  }

  const char* name() const noexcept override { return "xmpp"; }

  std::string message(int ev) const override { return std::string(describe(ev)); }

  char const* message(int ev, char* /*buffer*/, std::size_t /*len*/) const noexcept override {
    return describe(ev);
  }

 private:
  static const char* describe(int ev) noexcept {
    switch (static_cast<Errc>(ev)) {
      case Errc::Ok:
        return "success";
      case Errc::NotWellFormed:
        return "XML is not well-formed";
      case Errc::RestrictedXml:
        return "restricted XML (DTD, entity declaration, processing instruction or comment)";
      case Errc::PolicyViolation:
        return "policy violation (stanza size, nesting depth or attribute count)";
      case Errc::InvalidNamespace:
        return "invalid stream namespace";
      case Errc::JidMalformed:
        return "malformed JID";
      case Errc::NotAuthorized:
        return "not authorized";
      case Errc::MalformedRequest:
        return "malformed SASL request";
      case Errc::InvalidAuthzid:
        return "invalid authorization identity";
      case Errc::EncryptionRequired:
        return "encryption required";
    }
    return "unknown xmpp error";
  }

  XmppCategory() = default;

 protected:
  // Never deleted through a base pointer: instance() owns the only one.
  ~XmppCategory() = default;
};
#pragma GCC diagnostic pop

}  // namespace

const boost::system::error_category& xmpp_category() noexcept {
  return XmppCategory::instance();
}

std::string_view stream_condition(boost::system::error_code ec) noexcept {
  if (ec.category() != xmpp_category()) {
    return "internal-server-error";
  }
  // RFC 6120 §4.9.3: the defined stream error conditions.
  switch (static_cast<Errc>(ec.value())) {
    case Errc::NotWellFormed:
      return "not-well-formed";  // §4.9.3.13
    case Errc::RestrictedXml:
      return "restricted-xml";  // §4.9.3.18
    case Errc::PolicyViolation:
      return "policy-violation";  // §4.9.3.14
    case Errc::InvalidNamespace:
      return "invalid-namespace";  // §4.9.3.10
    case Errc::NotAuthorized:
      return "not-authorized";  // §4.9.3.12
    default:
      return "internal-server-error";  // §4.9.3.8
  }
}

}  // namespace tc::xmpp
