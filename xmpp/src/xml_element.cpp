// SPDX-License-Identifier: Apache-2.0
#include "xmpp/xml_element.h"

#include <algorithm>

namespace tc::xmpp {
namespace {

constexpr std::string_view kXmlNamespace = "http://www.w3.org/XML/1998/namespace";

// Appends `raw` with the five predefined entities escaped (XML 1.0 §2.4, §4.6). Escaping '>'
// and '\'' is not required everywhere, but doing it always keeps one function for both uses.
// In an attribute value tab, newline and carriage return are written as character references
// too: a reader normalises the literal characters to spaces (XML 1.0 §3.3.3), so an id or a
// nickname holding one would not come back as it was sent (the SRM protocol fuzzer found it).
void append_escaped(std::string& out, std::string_view raw, bool attribute = false) {
  std::size_t start = 0;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    const char* entity = nullptr;
    switch (raw[i]) {
      case '&':
        entity = "&amp;";
        break;
      case '<':
        entity = "&lt;";
        break;
      case '>':
        entity = "&gt;";
        break;
      case '"':
        entity = "&quot;";
        break;
      case '\'':
        entity = "&apos;";
        break;
      case '\t':
        entity = attribute ? "&#9;" : nullptr;
        break;
      case '\n':
        entity = attribute ? "&#10;" : nullptr;
        break;
      case '\r':
        entity = attribute ? "&#13;" : nullptr;
        break;
      default:
        continue;
    }
    if (entity == nullptr) {
      continue;
    }
    out.append(raw.substr(start, i - start));
    out.append(entity);
    start = i + 1;
  }
  out.append(raw.substr(start));
}

bool matches(const XmlElement& e, std::string_view name, std::string_view xmlns) {
  return !e.is_text() && e.name() == name && (xmlns.empty() || e.xmlns() == xmlns);
}

}  // namespace

XmlElement::XmlElement(std::string name, std::string xmlns)
    : name_(std::move(name)), xmlns_(std::move(xmlns)) {}

XmlElement XmlElement::text_node(std::string text) {
  XmlElement node;
  node.text_ = std::move(text);
  return node;
}

std::string_view XmlElement::attr(std::string_view key) const {
  for (const auto& [k, v] : attrs_) {
    if (k == key) {
      return v;
    }
  }
  return {};
}

bool XmlElement::has_attr(std::string_view key) const {
  return std::any_of(attrs_.begin(), attrs_.end(),
                     [&](const Attribute& a) { return a.first == key; });
}

XmlElement& XmlElement::set_attr(std::string key, std::string value) {
  for (auto& [k, v] : attrs_) {
    if (k == key) {
      v = std::move(value);
      return *this;
    }
  }
  attrs_.emplace_back(std::move(key), std::move(value));
  return *this;
}

void XmlElement::remove_attr(std::string_view key) {
  std::erase_if(attrs_, [&](const Attribute& a) { return a.first == key; });
}

XmlElement& XmlElement::add_child(XmlElement child) {
  return children_.emplace_back(std::move(child));
}

XmlElement& XmlElement::add_child(std::string name, std::string xmlns) {
  return children_.emplace_back(std::move(name), std::move(xmlns));
}

XmlElement& XmlElement::add_text(std::string text) {
  return children_.emplace_back(text_node(std::move(text)));
}

void XmlElement::remove_children(std::string_view name, std::string_view xmlns) {
  std::erase_if(children_, [&](const XmlElement& c) { return matches(c, name, xmlns); });
}

const XmlElement* XmlElement::child(std::string_view name, std::string_view xmlns) const {
  for (const auto& c : children_) {
    if (matches(c, name, xmlns)) {
      return &c;
    }
  }
  return nullptr;
}

XmlElement* XmlElement::child(std::string_view name, std::string_view xmlns) {
  return const_cast<XmlElement*>(std::as_const(*this).child(name, xmlns));
}

std::vector<const XmlElement*> XmlElement::children(std::string_view name,
                                                    std::string_view xmlns) const {
  std::vector<const XmlElement*> found;
  for (const auto& c : children_) {
    if (matches(c, name, xmlns)) {
      found.push_back(&c);
    }
  }
  return found;
}

const XmlElement* XmlElement::first_element() const {
  for (const auto& c : children_) {
    if (!c.is_text()) {
      return &c;
    }
  }
  return nullptr;
}

std::string XmlElement::text() const {
  if (is_text()) {
    return text_;
  }
  std::string out;
  for (const auto& c : children_) {
    if (c.is_text()) {
      out += c.text_;
    }
  }
  return out;
}

std::string XmlElement::child_text(std::string_view name, std::string_view xmlns) const {
  const XmlElement* c = child(name, xmlns);
  return c == nullptr ? std::string() : c->text();
}

std::string XmlElement::to_string(std::string_view parent_xmlns) const {
  std::string out;
  append_to(out, parent_xmlns);
  return out;
}

void XmlElement::append_to(std::string& out, std::string_view parent_xmlns) const {
  if (is_text()) {
    append_escaped(out, text_);
    return;
  }
  // The XML namespace is bound to "xml" and may not be declared as a default namespace
  // (Namespaces in XML 1.0 §3), so an element in it keeps the prefix.
  const bool xml_prefixed = xmlns_ == kXmlNamespace;
  out += '<';
  if (xml_prefixed) {
    out += "xml:";
  }
  out += name_;
  // An empty xmlns() means "inherit": builders can add children without repeating the
  // namespace. The namespace is carried by xmlns(), so a stored "xmlns" attribute (the stream
  // header keeps its default namespace there) is never written twice.
  std::string_view in_scope = parent_xmlns;
  if (!xml_prefixed && !xmlns_.empty() && xmlns_ != parent_xmlns) {
    out += " xmlns=\"";
    append_escaped(out, xmlns_);
    out += '"';
    in_scope = xmlns_;
  }
  for (const auto& [key, value] : attrs_) {
    if (key == "xmlns") {
      continue;
    }
    out += ' ';
    out += key;
    out += "=\"";
    append_escaped(out, value, true);
    out += '"';
  }
  if (children_.empty()) {
    out += "/>";
    return;
  }
  out += '>';
  for (const auto& c : children_) {
    c.append_to(out, in_scope);
  }
  out += "</";
  if (xml_prefixed) {
    out += "xml:";
  }
  out += name_;
  out += '>';
}

std::string xml_escape(std::string_view raw) {
  std::string out;
  out.reserve(raw.size());
  append_escaped(out, raw);
  return out;
}

}  // namespace tc::xmpp
