#pragma once

// resource_pattern.h (private to src/policy): one entry of a rule's
// `resources:` list, parsed once and expanded per request.

#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "policy/action.h"
#include "policy/policy.h"

namespace warden::policy {

// SubstitutionSource names what a ${...} placeholder reads from the principal.
enum class SubstitutionSource : uint8_t { kId, kRole, kLabel };

// Expansion is the outcome of expanding a pattern for one principal.
enum class Expansion : uint8_t {
  kExpanded,  // the output holds the pattern to match
  kNoMatch,   // a substitution failed in a permit: the pattern matches nothing
  kMatchAny,  // a substitution failed in a forbid on a client id / name: matches everything
};

// isSafeSubstitutionValue reports whether |v| may be substituted: non-empty,
// no '/', '+', '#' or NUL, and not starting with '$' (so a value can never
// widen a pattern or reach a $-topic).
bool isSafeSubstitutionValue(std::string_view v);

class ResourcePattern {
 public:
  // parse reads the placeholders of |text|; the error message has no
  // position (the caller adds it).
  static core::Result<ResourcePattern> parse(std::string_view text);

  // validateFor checks that the pattern is meaningful for actions of
  // |family|; |action| names one such action for the message. A permit on
  // "$share/..." must name a well-formed share; a forbid may be broader
  // ("$share/#" forbids every shared subscription).
  core::Status validateFor(ActionFamily family, std::string_view action, bool forbid) const;

  const std::string& text() const { return text_; }
  bool isAny() const { return text_ == "*"; }
  bool hasSubstitutions() const { return has_substitutions_; }
  // literalPrefix is the pattern's leading whole topic levels free of
  // wildcards and placeholders, joined by '/': every topic or filter that a
  // topic pattern matches or contains starts with it.
  std::string_view literalPrefix() const { return literal_prefix_; }

  // expand writes the pattern with |principal|'s values substituted into
  // |out| (cleared first). A failed substitution makes a permit match nothing
  // and, in a forbid (|fail_closed|), turns its topic level into '+' or, for
  // client ids and names, matches everything.
  Expansion expand(const Principal& principal, ActionFamily family, bool fail_closed, std::string& out) const;

 private:
  struct Piece {
    bool substitution = false;
    SubstitutionSource source = SubstitutionSource::kId;
    std::string text;  // the literal, or the label key
  };

  // probe returns the text with every placeholder replaced by |stand_in|.
  std::string probe(std::string_view stand_in) const;

  std::string text_;
  std::vector<Piece> pieces_;
  bool has_substitutions_ = false;
  std::string literal_prefix_;
};

}  // namespace warden::policy
