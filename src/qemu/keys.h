// Text and key chords as QEMU keyboard codes (QMP send-key "qcode"s), for
// typing into a guest's console from the API. The text is typed as a US
// keyboard would: what such a keyboard cannot type is refused, not guessed.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace pampa {

// The keys pressed together for one keystroke, e.g. {"shift", "a"}.
using KeyChord = std::vector<std::string>;

// The most characters one request may type (QEMU queues a few thousand input
// events; each character takes up to five).
inline constexpr size_t kMaxTypedText = 512;

// One chord per character: printable ASCII, newline (Enter) and tab.
Result<std::vector<KeyChord>> TextToKeyChords(std::string_view text);

// "ctrl-alt-delete", "ctrl-alt-f2", "ret": key names joined by '-', each a
// qcode QEMU knows (kInvalid names the unknown key).
Result<KeyChord> ParseKeyChord(std::string_view chord);

}  // namespace pampa
