// SPDX-License-Identifier: Apache-2.0
#include "xmpp/xml_element.h"

#include <gtest/gtest.h>

#include "xmpp/namespaces.h"

namespace tc::xmpp {
namespace {

TEST(XmlElementTest, AttributesSetReplaceRemove) {
  XmlElement e("message", ns::kClient);
  e.set_attr("to", "a@b").set_attr("type", "chat");
  EXPECT_EQ(e.attr("to"), "a@b");
  EXPECT_TRUE(e.has_attr("type"));
  EXPECT_EQ(e.attr("missing"), "");
  EXPECT_FALSE(e.has_attr("missing"));
  e.set_attr("to", "c@d");
  EXPECT_EQ(e.attr("to"), "c@d");
  ASSERT_EQ(e.attrs().size(), 2u);
  EXPECT_EQ(e.attrs()[0].first, "to");  // replacing keeps the position
  e.remove_attr("to");
  EXPECT_FALSE(e.has_attr("to"));
  EXPECT_EQ(e.attrs().size(), 1u);
}

TEST(XmlElementTest, ChildrenAndText) {
  XmlElement msg("message", ns::kClient);
  msg.add_child("body", ns::kClient).add_text("hello ");
  msg.add_child("x", ns::kMucUser);
  msg.add_child("body", "urn:other").add_text("other");
  msg.add_text("tail");

  ASSERT_NE(msg.child("body"), nullptr);
  EXPECT_EQ(msg.child("body")->text(), "hello ");
  EXPECT_EQ(msg.child("body", "urn:other")->text(), "other");
  EXPECT_EQ(msg.child("x", ns::kMuc), nullptr);
  EXPECT_NE(msg.child("x", ns::kMucUser), nullptr);
  EXPECT_EQ(msg.children("body").size(), 2u);
  EXPECT_EQ(msg.children("body", ns::kClient).size(), 1u);
  EXPECT_EQ(msg.child_text("body"), "hello ");
  EXPECT_EQ(msg.child_text("nothing"), "");
  EXPECT_EQ(msg.text(), "tail");
  EXPECT_EQ(msg.first_element()->name(), "body");
  EXPECT_EQ(msg.nodes().size(), 4u);
  EXPECT_TRUE(msg.nodes().back().is_text());

  msg.remove_children("body", ns::kClient);
  EXPECT_EQ(msg.children("body").size(), 1u);
  msg.remove_children("body");
  EXPECT_EQ(msg.child("body"), nullptr);

  XmlElement mutable_msg("message");
  mutable_msg.add_child("subject").add_text("s");
  XmlElement* subject = mutable_msg.child("subject");
  ASSERT_NE(subject, nullptr);
  subject->set_attr("xml:lang", "en");
  EXPECT_EQ(mutable_msg.child("subject")->attr("xml:lang"), "en");
}

TEST(XmlElementTest, TextNode) {
  const XmlElement t = XmlElement::text_node("a<b");
  EXPECT_TRUE(t.is_text());
  EXPECT_EQ(t.text(), "a<b");
  EXPECT_EQ(t.to_string(), "a&lt;b");
  EXPECT_EQ(XmlElement().first_element(), nullptr);
}

TEST(XmlElementTest, SerialisesWithNamespacesOnlyWhereTheyChange) {
  XmlElement msg("message", ns::kClient);
  msg.set_attr("to", "room@muc.example.com").set_attr("type", "groupchat");
  msg.add_child("body", ns::kClient).add_text("hi");
  msg.add_child("x", ns::kMucUser).add_child("item", ns::kMucUser).set_attr("role", "none");
  msg.add_child("inherit");  // empty namespace: inherits from the parent

  EXPECT_EQ(msg.to_string(ns::kClient),
            "<message to=\"room@muc.example.com\" type=\"groupchat\"><body>hi</body>"
            "<x xmlns=\"http://jabber.org/protocol/muc#user\"><item role=\"none\"/></x>"
            "<inherit/></message>");
  EXPECT_EQ(msg.to_string(),
            "<message xmlns=\"jabber:client\" to=\"room@muc.example.com\" type=\"groupchat\">"
            "<body>hi</body><x xmlns=\"http://jabber.org/protocol/muc#user\"><item "
            "role=\"none\"/></x><inherit/></message>");

  std::string out = "prefix:";
  msg.child("body")->append_to(out, ns::kClient);
  EXPECT_EQ(out, "prefix:<body>hi</body>");
}

TEST(XmlElementTest, EscapesTextAndAttributes) {
  XmlElement e("body");
  e.set_attr("a", "x\"y'z<&>");
  e.add_text("1 < 2 && 3 > 2 \"q\" 'a'");
  EXPECT_EQ(e.to_string(),
            "<body a=\"x&quot;y&apos;z&lt;&amp;&gt;\">1 &lt; 2 &amp;&amp; 3 &gt; 2 "
            "&quot;q&quot; &apos;a&apos;</body>");
  EXPECT_EQ(xml_escape("plain"), "plain");
  EXPECT_EQ(xml_escape(""), "");
  EXPECT_EQ(xml_escape("&&"), "&amp;&amp;");
}

TEST(XmlElementTest, WhitespaceInAttributesSurvivesAReader) {
  // A reader turns literal tabs and line ends in an attribute into spaces (XML 1.0 §3.3.3):
  // written as character references, an id or a nickname comes back as it was sent. Text
  // keeps them literal.
  XmlElement e("message");
  e.set_attr("id", "a\tb\nc\rd");
  e.add_text("line 1\nline 2");
  EXPECT_EQ(e.to_string(), "<message id=\"a&#9;b&#10;c&#13;d\">line 1\nline 2</message>");
}

TEST(XmlElementTest, XmlnsAttributeIsNotWrittenTwice) {
  XmlElement e("stream", ns::kStream);
  e.set_attr("xmlns", ns::kClient);
  e.set_attr("to", "example.com");
  EXPECT_EQ(e.to_string(),
            "<stream xmlns=\"http://etherx.jabber.org/streams\" to=\"example.com\"/>");
}

TEST(XmlElementTest, SetNameAndNamespace) {
  XmlElement e;
  e.set_name("iq");
  e.set_xmlns(ns::kServer);
  EXPECT_FALSE(e.is_text());
  EXPECT_EQ(e.to_string(ns::kServer), "<iq/>");
  EXPECT_EQ(e.to_string(ns::kClient), "<iq xmlns=\"jabber:server\"/>");
}

}  // namespace
}  // namespace tc::xmpp
