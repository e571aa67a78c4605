#include "qemu/keys.h"

#include <array>
#include <cstdio>

namespace pampa {

namespace {

// The US layout: the unshifted and shifted character of each key that types one.
struct KeyChars {
  const char* qcode;
  char plain;
  char shifted;
};

constexpr std::array<KeyChars, 48> kKeys = {{
    {"1", '1', '!'},
    {"2", '2', '@'},
    {"3", '3', '#'},
    {"4", '4', '$'},
    {"5", '5', '%'},
    {"6", '6', '^'},
    {"7", '7', '&'},
    {"8", '8', '*'},
    {"9", '9', '('},
    {"0", '0', ')'},
    {"minus", '-', '_'},
    {"equal", '=', '+'},
    {"bracket_left", '[', '{'},
    {"bracket_right", ']', '}'},
    {"backslash", '\\', '|'},
    {"semicolon", ';', ':'},
    {"apostrophe", '\'', '"'},
    {"grave_accent", '`', '~'},
    {"comma", ',', '<'},
    {"dot", '.', '>'},
    {"slash", '/', '?'},
    {"spc", ' ', ' '},
    {"a", 'a', 'A'},
    {"b", 'b', 'B'},
    {"c", 'c', 'C'},
    {"d", 'd', 'D'},
    {"e", 'e', 'E'},
    {"f", 'f', 'F'},
    {"g", 'g', 'G'},
    {"h", 'h', 'H'},
    {"i", 'i', 'I'},
    {"j", 'j', 'J'},
    {"k", 'k', 'K'},
    {"l", 'l', 'L'},
    {"m", 'm', 'M'},
    {"n", 'n', 'N'},
    {"o", 'o', 'O'},
    {"p", 'p', 'P'},
    {"q", 'q', 'Q'},
    {"r", 'r', 'R'},
    {"s", 's', 'S'},
    {"t", 't', 'T'},
    {"u", 'u', 'U'},
    {"v", 'v', 'V'},
    {"w", 'w', 'W'},
    {"x", 'x', 'X'},
    {"y", 'y', 'Y'},
    {"z", 'z', 'Z'},
}};

// Keys that type nothing but may appear in a chord.
constexpr std::array<const char*, 37> kOtherKeys = {
    "shift", "shift_r", "ctrl",      "ctrl_r", "alt",   "alt_r", "meta_l", "meta_r", "ret", "tab",
    "esc",   "delete",  "backspace", "insert", "home",  "end",   "pgup",   "pgdn",   "up",  "down",
    "left",  "right",   "f1",        "f2",     "f3",    "f4",    "f5",     "f6",     "f7",  "f8",
    "f9",    "f10",     "f11",       "f12",    "print", "sysrq", "menu",
};

bool KnownKey(std::string_view name) {
  for (const auto& k : kKeys) {
    if (name == k.qcode) return true;
  }
  for (const char* k : kOtherKeys) {
    if (name == k) return true;
  }
  return false;
}

}  // namespace

Result<std::vector<KeyChord>> TextToKeyChords(std::string_view text) {
  if (text.size() > kMaxTypedText) {
    return Status::Invalid("text is " + std::to_string(text.size()) + " characters; type at most " +
                           std::to_string(kMaxTypedText) + " at a time");
  }
  std::vector<KeyChord> chords;
  chords.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\n') {
      chords.push_back({"ret"});
      continue;
    }
    if (c == '\t') {
      chords.push_back({"tab"});
      continue;
    }
    bool found = false;
    for (const auto& k : kKeys) {
      if (c == k.plain) {
        chords.push_back({k.qcode});
      } else if (c == k.shifted) {
        chords.push_back({"shift", k.qcode});
      } else {
        continue;
      }
      found = true;
      break;
    }
    if (!found) {
      char code[8];
      std::snprintf(code, sizeof code, "0x%02x", static_cast<unsigned char>(c));
      return Status::Invalid("character " + std::string(code) + " at position " + std::to_string(i + 1) +
                             " cannot be typed on a US keyboard; send printable ASCII, newlines and tabs only");
    }
  }
  return chords;
}

Result<KeyChord> ParseKeyChord(std::string_view chord) {
  KeyChord keys;
  size_t start = 0;
  while (start <= chord.size()) {
    size_t dash = chord.find('-', start);
    if (dash == std::string_view::npos) dash = chord.size();
    std::string key(chord.substr(start, dash - start));
    if (key == "del") key = "delete";
    if (key == "enter") key = "ret";
    if (key.empty() || !KnownKey(key)) {
      return Status::Invalid("unknown key '" + key + "' in '" + std::string(chord) +
                             "'; name keys as QEMU does, joined by '-' (e.g. ctrl-alt-delete, alt-f2, ret)");
    }
    keys.push_back(std::move(key));
    start = dash + 1;
  }
  if (keys.size() > 6) return Status::Invalid("a chord presses at most 6 keys at once");
  return keys;
}

}  // namespace pampa
