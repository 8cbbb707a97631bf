// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tc::xmpp {

/// A parsed or built XML element: name, namespace URI, attributes and ordered children.
/// Text is held as child nodes whose name is empty (is_text()), so mixed content keeps its
/// order. Plain value type; cheap to move.
class XmlElement {
 public:
  using Attribute = std::pair<std::string, std::string>;

  XmlElement() = default;
  explicit XmlElement(std::string name, std::string xmlns = {});

  /// A text node holding `text` (not escaped; escaping happens on serialisation).
  static XmlElement text_node(std::string text);

  bool is_text() const { return name_.empty(); }
  const std::string& name() const { return name_; }
  /// The namespace URI the element is in ("" when none was declared).
  const std::string& xmlns() const { return xmlns_; }
  void set_xmlns(std::string xmlns) { xmlns_ = std::move(xmlns); }
  void set_name(std::string name) { name_ = std::move(name); }

  /// Attribute value, or "" when absent. Namespaced attributes are keyed by their
  /// qualified name as written on the wire: "xml:lang".
  std::string_view attr(std::string_view key) const;
  bool has_attr(std::string_view key) const;
  /// Sets (or replaces) an attribute. Returns *this for chaining.
  XmlElement& set_attr(std::string key, std::string value);
  void remove_attr(std::string_view key);
  const std::vector<Attribute>& attrs() const { return attrs_; }

  /// Appends a child and returns a reference to it (valid until the next append).
  XmlElement& add_child(XmlElement child);
  XmlElement& add_child(std::string name, std::string xmlns = {});
  /// Appends a text node.
  XmlElement& add_text(std::string text);
  /// Removes every child element named `name` in `xmlns` ("" = any namespace).
  void remove_children(std::string_view name, std::string_view xmlns = {});

  /// All child nodes, text nodes included.
  const std::vector<XmlElement>& nodes() const { return children_; }
  std::vector<XmlElement>& nodes() { return children_; }
  /// The first child element with this name (and namespace, when not empty), or nullptr.
  const XmlElement* child(std::string_view name, std::string_view xmlns = {}) const;
  XmlElement* child(std::string_view name, std::string_view xmlns = {});
  /// Every child element with this name (and namespace, when not empty).
  std::vector<const XmlElement*> children(std::string_view name, std::string_view xmlns = {}) const;
  /// The first child element (text nodes skipped), or nullptr.
  const XmlElement* first_element() const;

  /// Concatenated direct text content (for a text node: its text).
  std::string text() const;
  /// text() of child(name, xmlns), or "" when there is no such child.
  std::string child_text(std::string_view name, std::string_view xmlns = {}) const;

  /// Serialises as XML. `parent_xmlns` is the namespace in scope: an xmlns attribute is
  /// written only where the element's namespace differs from it. Text and attribute values
  /// are escaped.
  std::string to_string(std::string_view parent_xmlns = {}) const;
  void append_to(std::string& out, std::string_view parent_xmlns = {}) const;

 private:
  std::string name_;
  std::string xmlns_;
  std::string text_;  // only for text nodes
  std::vector<Attribute> attrs_;
  std::vector<XmlElement> children_;
};

/// Escapes &, <, >, " and ' for use in text or attribute values.
std::string xml_escape(std::string_view raw);

}  // namespace tc::xmpp
