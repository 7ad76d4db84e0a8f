// SPDX-License-Identifier: MIT
#pragma once

// A parser for Structured Field Lists (RFC 9651, section 4.2.1), for the fields of the IETF RateLimit draft
// (`RateLimit: "default";r=50;t=30`). It follows the RFC's parsing algorithm: any syntax error fails the whole
// field (the draft says a malformed RateLimit field MUST be ignored), and it never throws.

#include "config.hpp"

#include <cstddef>      // size_t
#include <cstdint>      // int64_t
#include <optional>     // optional
#include <string>       // string
#include <string_view>  // string_view
#include <utility>      // pair, move
#include <vector>       // vector

POLLSTER_NAMESPACE_BEGIN
namespace detail {

/// A bare item. Integers and decimals are kept (a decimal as thousandths); strings and tokens as their text; a
/// byte sequence as its base64 text, undecoded (nothing here needs its bytes).
struct sf_item {
  enum class kind : std::uint8_t { integer, decimal, string, token, bytes, boolean, date, display, inner_list };
  kind type = kind::integer;
  std::int64_t number = 0;  ///< integer, date, boolean (0/1), or a decimal in thousandths
  std::string text;         ///< string, token, display string, or the base64 of a byte sequence
};

/// A list member: an item (or an inner list, whose items are skipped) with its parameters in order.
struct sf_member {
  sf_item value;
  std::vector<std::pair<std::string, sf_item>> parameters;

  const sf_item* parameter(std::string_view key) const noexcept {
    for (const auto& p : parameters) {
      if (p.first == key) return &p.second;  // keys are unique after parsing: a later one replaced an earlier one
    }
    return nullptr;
  }
};

class sf_parser {
 public:
  explicit sf_parser(std::string_view text) noexcept : in_(text) {}

  /// The field as a List, or nothing at the first syntax error.
  std::optional<std::vector<sf_member>> list() {
    std::vector<sf_member> members;
    skip_sp();
    while (pos_ < in_.size()) {
      sf_member member;
      if (!list_member(member)) return std::nullopt;
      members.push_back(std::move(member));
      skip_ows();
      if (pos_ == in_.size()) return members;
      if (in_[pos_] != ',') return std::nullopt;
      ++pos_;
      skip_ows();
      if (pos_ == in_.size()) return std::nullopt;  // a trailing comma
    }
    return members;
  }

 private:
  static bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
  static bool is_lcalpha(char c) noexcept { return c >= 'a' && c <= 'z'; }
  static bool is_alpha(char c) noexcept { return is_lcalpha(c) || (c >= 'A' && c <= 'Z'); }
  /// RFC 9110's tchar.
  static bool is_tchar(char c) noexcept {
    if (is_alpha(c) || is_digit(c)) return true;
    for (const char t : std::string_view("!#$%&'*+-.^_`|~")) {
      if (c == t) return true;
    }
    return false;
  }
  static bool is_base64(char c) noexcept { return is_alpha(c) || is_digit(c) || c == '+' || c == '/' || c == '='; }

  bool at(char c) const noexcept { return pos_ < in_.size() && in_[pos_] == c; }
  void skip_sp() noexcept {
    while (at(' ')) ++pos_;
  }
  void skip_ows() noexcept {
    while (at(' ') || at('\t')) ++pos_;
  }

  bool list_member(sf_member& member) {
    if (at('(')) {
      if (!inner_list()) return false;
      member.value.type = sf_item::kind::inner_list;
    } else if (!bare_item(member.value)) {
      return false;
    }
    return parameters(member.parameters);
  }

  bool inner_list() {
    ++pos_;  // '('
    for (;;) {
      skip_sp();
      if (at(')')) {
        ++pos_;
        return true;
      }
      sf_item item;
      std::vector<std::pair<std::string, sf_item>> ignored;
      if (!bare_item(item) || !parameters(ignored)) return false;
      if (!at(' ') && !at(')')) return false;
    }
  }

  bool parameters(std::vector<std::pair<std::string, sf_item>>& out) {
    while (at(';')) {
      ++pos_;
      skip_sp();
      std::string name;
      if (!key(name)) return false;
      sf_item value;
      value.type = sf_item::kind::boolean;
      value.number = 1;  // a parameter without a value is true
      if (at('=')) {
        ++pos_;
        if (!bare_item(value)) return false;
      }
      bool replaced = false;
      for (auto& p : out) {
        if (p.first == name) {
          p.second = std::move(value);
          replaced = true;
          break;
        }
      }
      if (!replaced) out.emplace_back(std::move(name), std::move(value));
    }
    return true;
  }

  bool key(std::string& out) {
    if (pos_ >= in_.size() || !(is_lcalpha(in_[pos_]) || in_[pos_] == '*')) return false;
    const std::size_t begin = pos_;
    while (pos_ < in_.size()) {
      const char c = in_[pos_];
      if (!(is_lcalpha(c) || is_digit(c) || c == '_' || c == '-' || c == '.' || c == '*')) break;
      ++pos_;
    }
    out.assign(in_.substr(begin, pos_ - begin));
    return true;
  }

  bool bare_item(sf_item& item) {
    if (pos_ >= in_.size()) return false;
    const char c = in_[pos_];
    if (c == '-' || is_digit(c)) return number(item);
    if (c == '"') return string(item);
    if (c == '*' || is_alpha(c)) return token(item);
    if (c == ':') return bytes(item);
    if (c == '?') return boolean(item);
    if (c == '@') {
      ++pos_;
      if (!number(item) || item.type != sf_item::kind::integer) return false;
      item.type = sf_item::kind::date;
      return true;
    }
    if (c == '%') return display(item);
    return false;
  }

  /// sf-integer (at most 15 digits) or sf-decimal (at most 12 integer and 3 fractional digits).
  bool number(sf_item& item) {
    bool negative = false;
    if (at('-')) {
      negative = true;
      ++pos_;
    }
    std::int64_t whole = 0;
    std::size_t digits = 0;
    while (pos_ < in_.size() && is_digit(in_[pos_])) {
      if (++digits > 15) return false;
      whole = whole * 10 + (in_[pos_++] - '0');
    }
    if (digits == 0) return false;
    if (!at('.')) {
      item.type = sf_item::kind::integer;
      item.number = negative ? -whole : whole;
      return true;
    }
    if (digits > 12) return false;
    ++pos_;
    std::int64_t fraction = 0;
    std::size_t fraction_digits = 0;
    while (pos_ < in_.size() && is_digit(in_[pos_])) {
      if (++fraction_digits > 3) return false;
      fraction = fraction * 10 + (in_[pos_++] - '0');
    }
    if (fraction_digits == 0) return false;
    while (fraction_digits++ < 3) fraction *= 10;
    item.type = sf_item::kind::decimal;
    item.number = (negative ? -1 : 1) * (whole * 1000 + fraction);
    return true;
  }

  bool string(sf_item& item) {
    ++pos_;  // '"'
    item.type = sf_item::kind::string;
    item.text.clear();
    while (pos_ < in_.size()) {
      const char c = in_[pos_++];
      if (c == '"') return true;
      if (c == '\\') {
        if (pos_ >= in_.size() || (in_[pos_] != '"' && in_[pos_] != '\\')) return false;
        item.text += in_[pos_++];
        continue;
      }
      if (c < 0x20 || c > 0x7e) return false;
      item.text += c;
    }
    return false;  // no closing quote
  }

  bool token(sf_item& item) {
    const std::size_t begin = pos_++;
    while (pos_ < in_.size() && (is_tchar(in_[pos_]) || in_[pos_] == ':' || in_[pos_] == '/')) ++pos_;
    item.type = sf_item::kind::token;
    item.text.assign(in_.substr(begin, pos_ - begin));
    return true;
  }

  bool bytes(sf_item& item) {
    const std::size_t begin = ++pos_;  // after ':'
    while (pos_ < in_.size() && is_base64(in_[pos_])) ++pos_;
    if (!at(':')) return false;
    item.type = sf_item::kind::bytes;
    item.text.assign(in_.substr(begin, pos_ - begin));
    ++pos_;
    return true;
  }

  bool boolean(sf_item& item) {
    ++pos_;  // '?'
    if (!at('0') && !at('1')) return false;
    item.type = sf_item::kind::boolean;
    item.number = in_[pos_++] == '1' ? 1 : 0;
    return true;
  }

  /// %"..." (RFC 9651): percent-encoded UTF-8, kept encoded.
  bool display(sf_item& item) {
    ++pos_;  // '%'
    if (!at('"')) return false;
    const std::size_t begin = ++pos_;
    while (pos_ < in_.size() && in_[pos_] != '"') {
      const char c = in_[pos_];
      if (c < 0x20 || c > 0x7e) return false;
      ++pos_;
    }
    if (!at('"')) return false;
    item.type = sf_item::kind::display;
    item.text.assign(in_.substr(begin, pos_ - begin));
    ++pos_;
    return true;
  }

  std::string_view in_;
  std::size_t pos_ = 0;
};

/// The Structured Field List in `text`, or nothing when it is malformed.
inline std::optional<std::vector<sf_member>> parse_sf_list(std::string_view text) { return sf_parser(text).list(); }

}  // namespace detail
POLLSTER_NAMESPACE_END
