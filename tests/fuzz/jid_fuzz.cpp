// SPDX-License-Identifier: Apache-2.0
// Parses bytes as a JID and through each stringprep profile; checks the length limits and that
// normalising twice changes nothing (for ASCII input, where stringprep is surely idempotent).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "xmpp/jid.h"

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  bool ascii = true;
  for (char c : input) {
    ascii = ascii && static_cast<unsigned char>(c) < 0x80;
  }
  auto jid = tc::xmpp::Jid::parse(input);
  if (jid) {
    if (jid->domain().empty() || jid->local().size() > 1023 || jid->domain().size() > 1023 ||
        jid->resource().size() > 1023) {
      __builtin_trap();
    }
    auto again = tc::xmpp::Jid::parse(jid->str());
    if (ascii && (!again || *again != *jid)) {
      __builtin_trap();
    }
    auto rebuilt = tc::xmpp::Jid::from_parts(jid->local(), jid->domain(), jid->resource());
    if (ascii && (!rebuilt || *rebuilt != *jid)) {
      __builtin_trap();
    }
    (void)jid->bare().bare_str();
    (void)jid->with_resource(input);
  }
  (void)tc::xmpp::nodeprep(input);
  (void)tc::xmpp::nameprep(input);
  (void)tc::xmpp::resourceprep(input);
  (void)tc::xmpp::saslprep(input);
  return 0;
}
