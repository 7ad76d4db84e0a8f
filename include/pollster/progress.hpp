// SPDX-License-Identifier: MIT
#pragma once

// Progress: where a poll is, as a value another process can continue from (Azure's resume token). A poller exports
// its progress at any time (`poller::progress()`, or after every attempt through the `on_progress` hook), the user
// stores it (`progress_to_text` gives one string, given how the value and the error become text), and a poller
// built the same way elsewhere takes it up (`poller::resume(progress, now, since_saved)`): the next check comes when
// the first owner's would have, the attempt count, elapsed time, last value and error go on, and the schedule stands
// where it stood instead of starting again at its first delay.
//
// A schedule says where it stands through `position()` / `seek(position)`. `resumable{schedule}` gives any schedule
// both: it counts the delays drawn since the last seed and since the last reset, and `seek` replays them on a copy of
// the prototype (O(delays drawn)): exact for every schedule whose delays follow from its parameters, its generator's
// seed and the number of draws (all of pollster's; a jittered schedule must have been reseeded, as the runner does,
// or be built with the same generator everywhere).
//
// A check keeps its own state across owners (an ETag, a cursor) with two members, detected when present:
//   std::string save_state() const;            void restore_state(const std::string&);

#include "detail/config.hpp"
#include "detail/saturate.hpp"
#include "detail/text.hpp"

#include <cstddef>      // size_t
#include <cstdint>      // uint32_t, uint64_t
#include <limits>       // numeric_limits
#include <optional>     // optional
#include <string>       // string, to_string
#include <string_view>  // string_view
#include <type_traits>  // enable_if_t, false_type, void_t
#include <utility>      // move, declval
#include <vector>       // vector

POLLSTER_NAMESPACE_BEGIN

/// Where a schedule stands: enough to put a copy of the same prototype in the same place.
struct schedule_position {
  std::uint64_t draws = 0;        ///< delays drawn since the last seed (or since the schedule was built)
  std::uint64_t since_reset = 0;  ///< of which, drawn since the last reset()
  std::optional<std::uint64_t> seed;  ///< the last seed given to a jittered schedule (`reseed`), if any
  friend bool operator==(const schedule_position& a, const schedule_position& b) noexcept {
    return a.draws == b.draws && a.since_reset == b.since_reset && a.seed == b.seed;
  }
  friend bool operator!=(const schedule_position& a, const schedule_position& b) noexcept { return !(a == b); }
};

namespace detail {
template <class S, class = void>
struct can_reseed : std::false_type {};
template <class S>
struct can_reseed<S, std::void_t<decltype(std::declval<S&>().reseed(std::uint64_t{}))>> : std::true_type {};
template <class S, class = void>
struct says_jittered : std::false_type {};
template <class S>
struct says_jittered<S, std::void_t<decltype(bool{std::declval<const S&>().jittered()})>> : std::true_type {};
}  // namespace detail

/// Any schedule, with a position a poller can export and another poller seek to (see the top of this header).
/// Everything else is the wrapped schedule's: `resumable{geometric{1s, 1.1, 20s}}` polls exactly as Heat's does.
template <class Schedule>
class resumable {
 public:
  explicit resumable(Schedule schedule) : schedule_(schedule), prototype_(std::move(schedule)) {}

  duration next() {
    const duration d = schedule_.next();
    ++draws_;
    ++since_reset_;
    return d;
  }
  void reset() {
    schedule_.reset();
    since_reset_ = 0;
  }
  std::optional<duration> plateau() const { return schedule_.plateau(); }
  std::vector<duration> preview(std::size_t count) const {
    resumable copy = *this;
    std::vector<duration> delays;
    delays.reserve(count);
    for (std::size_t i = 0; i < count; ++i) delays.push_back(copy.next());
    return delays;
  }
  template <class S = Schedule, class = std::enable_if_t<detail::can_reseed<S>::value>>
  void reseed(std::uint64_t seed) {
    schedule_.reseed(seed);
    seed_ = seed;
    draws_ = 0;
  }
  bool jittered() const {
    if constexpr (detail::says_jittered<Schedule>::value) {
      return schedule_.jittered();
    } else {
      return detail::can_reseed<Schedule>::value;
    }
  }

  schedule_position position() const { return {draws_, since_reset_, seed_}; }
  /// Puts this schedule where `p` says: the prototype, reseeded with `p.seed` if any, with the same draws replayed.
  void seek(const schedule_position& p) {
    if (p.since_reset > p.draws) {
      detail::throw_invalid("resumable", "position.since_reset",
                            "<= position.draws (" + std::to_string(p.draws) + ")", std::to_string(p.since_reset));
    }
    schedule_ = prototype_;
    seed_.reset();
    if (p.seed) {
      if constexpr (detail::can_reseed<Schedule>::value) {
        schedule_.reseed(*p.seed);
        seed_ = p.seed;
      } else {
        detail::throw_invalid("resumable", "position.seed", "empty for a schedule without reseed()",
                              std::to_string(*p.seed));
      }
    }
    for (std::uint64_t i = 0; i < p.draws - p.since_reset; ++i) (void)schedule_.next();
    schedule_.reset();
    for (std::uint64_t i = 0; i < p.since_reset; ++i) (void)schedule_.next();
    draws_ = p.draws;
    since_reset_ = p.since_reset;
  }

  const Schedule& schedule() const noexcept { return schedule_; }

 private:
  Schedule schedule_;
  Schedule prototype_;  // what seek() starts again from: the generator as it was built
  std::uint64_t draws_ = 0;
  std::uint64_t since_reset_ = 0;
  std::optional<std::uint64_t> seed_;
};

/// Where a run stands, as of the end of its last concluded attempt (an attempt in flight when it was taken is not
/// counted: whoever resumes makes it again). A plain value: store it as you like (`progress_to_text`).
template <class T, class E>
struct poll_progress {
  std::uint64_t attempts = 0;  ///< checks concluded
  duration elapsed{};          ///< from the start of the run to the end of the last check
  duration slept{};            ///< idle time between checks so far
  duration next_wait{};        ///< from the end of the last check to the next check
  duration last_delay{};       ///< the delay planned after the last check
  schedule_position schedule;  ///< where the schedule stands
  std::uint32_t nudges = 0;
  std::uint32_t timeouts = 0;
  std::uint32_t abandoned = 0;
  std::optional<T> last_value;
  std::optional<E> last_error;
  std::string check_state;  ///< what the check's `save_state()` returned (an ETag, say); empty without one
};

namespace detail {
template <class S, class = void>
struct has_position : std::false_type {};
template <class S>
struct has_position<S, std::void_t<decltype(schedule_position{std::declval<const S&>().position()}),
                                   decltype(std::declval<S&>().seek(std::declval<const schedule_position&>()))>>
    : std::true_type {};

template <class C, class = void>
struct saves_state : std::false_type {};
template <class C>
struct saves_state<C, std::void_t<decltype(std::string{std::declval<const C&>().save_state()}),
                                  decltype(std::declval<C&>().restore_state(std::declval<const std::string&>()))>>
    : std::true_type {};

template <class H, class P, class = void>
struct has_on_progress : std::false_type {};
template <class H, class P>
struct has_on_progress<H, P, std::void_t<decltype(std::declval<H&>().on_progress(std::declval<const P&>()))>>
    : std::true_type {};

// The text form: a header line, then one "name value" line per field; strings as "<length>:<bytes>" so any bytes
// survive. Durations in nanoseconds.
inline void put_field(std::string& out, const char* name, std::uint64_t value) {
  out += name;
  out += ' ';
  out += std::to_string(value);
  out += '\n';
}
inline void put_field(std::string& out, const char* name, std::string_view bytes) {
  out += name;
  out += ' ';
  out += std::to_string(bytes.size());
  out += ':';
  out.append(bytes.data(), bytes.size());
  out += '\n';
}
inline std::uint64_t as_count(duration d) noexcept {
  return d < duration::zero() ? 0 : static_cast<std::uint64_t>(d.count());
}

class progress_reader {
 public:
  explicit progress_reader(std::string_view text) : text_(text) {}
  bool at_end() const noexcept { return at_ >= text_.size(); }
  std::string_view name() {
    const std::size_t space = text_.find(' ', at_);
    if (space == std::string_view::npos) fail("a field name", "end of text");
    const std::string_view n = text_.substr(at_, space - at_);
    at_ = space + 1;
    return n;
  }
  std::uint64_t number() {
    std::uint64_t value = 0;
    std::size_t digits = 0;
    while (at_ < text_.size() && text_[at_] >= '0' && text_[at_] <= '9') {
      const auto digit = static_cast<std::uint64_t>(text_[at_] - '0');
      if (value > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) fail("a number below 2^64", "more");
      value = value * 10 + digit;
      ++at_;
      ++digits;
    }
    if (digits == 0) fail("a number", "no digit");
    return value;
  }
  std::string_view bytes() {
    const std::uint64_t length = number();
    if (at_ >= text_.size() || text_[at_] != ':') fail("':' after a length", "something else");
    ++at_;
    if (length > text_.size() - at_) fail(std::to_string(length) + " bytes", "fewer");
    const std::string_view b = text_.substr(at_, static_cast<std::size_t>(length));
    at_ += static_cast<std::size_t>(length);
    return b;
  }
  /// After the length of an unknown field: skips its bytes if it has any (true), else nothing (false).
  bool skip_bytes(std::uint64_t length) {
    if (at_ >= text_.size() || text_[at_] != ':') return false;
    ++at_;
    if (length > text_.size() - at_) fail(std::to_string(length) + " bytes", "fewer");
    at_ += static_cast<std::size_t>(length);
    return true;
  }
  void end_line() {
    if (at_ >= text_.size() || text_[at_] != '\n') fail("a line end", "something else");
    ++at_;
  }
  [[noreturn]] void fail(const std::string& wanted, const std::string& got) const {
    throw_invalid("progress_from_text", "text", wanted + " at byte " + std::to_string(at_), got);
  }

 private:
  std::string_view text_;
  std::size_t at_ = 0;
};
inline duration as_duration(std::uint64_t ns) noexcept {
  return ns > static_cast<std::uint64_t>(duration::max().count()) ? duration::max()
                                                                   : duration{static_cast<duration::rep>(ns)};
}
inline std::uint32_t as_u32(std::uint64_t n) noexcept {
  constexpr std::uint32_t most = std::numeric_limits<std::uint32_t>::max();
  return n > most ? most : static_cast<std::uint32_t>(n);
}
}  // namespace detail

/// One string for a progress: `encode_value(const T&)` and `encode_error(const E&)` say how the value and the error
/// become text (any bytes); the rest is pollster's. Read it back with `progress_from_text`.
template <class T, class E, class EncodeValue, class EncodeError>
std::string progress_to_text(const poll_progress<T, E>& p, EncodeValue&& encode_value, EncodeError&& encode_error) {
  std::string out = "pollster-progress 1\n";
  detail::put_field(out, "attempts", p.attempts);
  detail::put_field(out, "elapsed", detail::as_count(p.elapsed));
  detail::put_field(out, "slept", detail::as_count(p.slept));
  detail::put_field(out, "next_wait", detail::as_count(p.next_wait));
  detail::put_field(out, "last_delay", detail::as_count(p.last_delay));
  detail::put_field(out, "draws", p.schedule.draws);
  detail::put_field(out, "since_reset", p.schedule.since_reset);
  if (p.schedule.seed) detail::put_field(out, "seed", *p.schedule.seed);
  detail::put_field(out, "nudges", p.nudges);
  detail::put_field(out, "timeouts", p.timeouts);
  detail::put_field(out, "abandoned", p.abandoned);
  if (p.last_value) {
    const std::string value = encode_value(*p.last_value);
    detail::put_field(out, "value", std::string_view{value});
  }
  if (p.last_error) {
    const std::string error = encode_error(*p.last_error);
    detail::put_field(out, "error", std::string_view{error});
  }
  if (!p.check_state.empty()) detail::put_field(out, "check_state", std::string_view{p.check_state});
  return out;
}

/// The progress `progress_to_text` wrote; `decode_value(std::string_view) -> T`, `decode_error(...) -> E`. Text that
/// is not such a progress is a std::invalid_argument naming the byte where reading failed. Unknown fields are
/// skipped (a newer writer may add some).
template <class T, class E, class DecodeValue, class DecodeError>
poll_progress<T, E> progress_from_text(std::string_view text, DecodeValue&& decode_value, DecodeError&& decode_error) {
  constexpr std::string_view header = "pollster-progress 1\n";
  if (text.substr(0, header.size()) != header) {
    detail::throw_invalid("progress_from_text", "text", "one that starts with \"pollster-progress 1\"",
                          "\"" + std::string(text.substr(0, 24)) + "\"");
  }
  poll_progress<T, E> p;
  detail::progress_reader in(text.substr(header.size()));
  while (!in.at_end()) {
    const std::string_view name = in.name();
    if (name == "value") {
      p.last_value.emplace(decode_value(in.bytes()));
    } else if (name == "error") {
      p.last_error.emplace(decode_error(in.bytes()));
    } else if (name == "check_state") {
      p.check_state = std::string(in.bytes());
    } else {
      const std::uint64_t n = in.number();
      if (name == "attempts") p.attempts = n;
      else if (name == "elapsed") p.elapsed = detail::as_duration(n);
      else if (name == "slept") p.slept = detail::as_duration(n);
      else if (name == "next_wait") p.next_wait = detail::as_duration(n);
      else if (name == "last_delay") p.last_delay = detail::as_duration(n);
      else if (name == "draws") p.schedule.draws = n;
      else if (name == "since_reset") p.schedule.since_reset = n;
      else if (name == "seed") p.schedule.seed = n;
      else if (name == "nudges") p.nudges = detail::as_u32(n);
      else if (name == "timeouts") p.timeouts = detail::as_u32(n);
      else if (name == "abandoned") p.abandoned = detail::as_u32(n);
      else (void)in.skip_bytes(n);  // an unknown field: skip its bytes, if it has any
    }
    in.end_line();
  }
  return p;
}

POLLSTER_NAMESPACE_END
