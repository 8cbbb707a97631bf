// SPDX-License-Identifier: Apache-2.0
// tc-bench-micro: Google Benchmark figures for the per-delivery work of the wire library: parsing
// a room message off a stream and serialising it again, as every occupant's delivery costs.
#include <string>
#include <string_view>
#include <vector>

#include <benchmark/benchmark.h>

#include "xmpp/namespaces.h"
#include "xmpp/stream_parser.h"
#include "xmpp/xml_element.h"

namespace {

using tc::xmpp::StreamEvent;
using tc::xmpp::StreamParser;
using tc::xmpp::XmlElement;

constexpr std::string_view kStreamHeader =
    "<?xml version='1.0'?><stream:stream from='localhost' id='s1' xmlns='jabber:client' "
    "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>";

std::string room_message(std::size_t body_bytes) {
  return "<message from='bench0@conference.localhost/bench1' to='bench2@localhost/r' "
         "type='groupchat' id='b0-17'><body>tcb 0 17 123456789 " +
         std::string(body_bytes, 'x') +
         "</body><occupant-id xmlns='urn:xmpp:occupant-id:0' id='abc'/>"
         "<stanza-id xmlns='urn:xmpp:sid:0' id='0123456789abcdef' "
         "by='bench0@conference.localhost'/></message>";
}

void parse_room_messages(benchmark::State& state) {
  const std::string message = room_message(static_cast<std::size_t>(state.range(0)));
  // A batch of 64 messages per feed, as one socket read often carries.
  std::string batch;
  for (int i = 0; i < 64; ++i) {
    batch += message;
  }
  StreamParser parser;
  std::vector<StreamEvent> events;
  (void)parser.feed(kStreamHeader, events);
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores): the benchmark idiom
    events.clear();
    auto fed = parser.feed(batch, events);
    benchmark::DoNotOptimize(fed);
    benchmark::DoNotOptimize(events.data());
  }
  state.SetItemsProcessed(state.iterations() * 64);
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(batch.size()));
}
BENCHMARK(parse_room_messages)->Arg(64)->Arg(1024);

void serialise_room_message(benchmark::State& state) {
  StreamParser parser;
  std::vector<StreamEvent> events;
  (void)parser.feed(
      std::string(kStreamHeader) + room_message(static_cast<std::size_t>(state.range(0))), events);
  const XmlElement& message = events.back().element;
  std::string out;
  for (auto _ : state) {  // NOLINT(clang-analyzer-deadcode.DeadStores): the benchmark idiom
    out.clear();
    message.append_to(out, tc::xmpp::ns::kClient);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(serialise_room_message)->Arg(64)->Arg(1024);

}  // namespace

BENCHMARK_MAIN();
