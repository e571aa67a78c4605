#include "qemu/keys.h"

#include <gtest/gtest.h>

namespace pampa {
namespace {

TEST(Keys, TextIsTypedAsAUsKeyboardWould) {
  auto chords = TextToKeyChords("ls -l /A_b\n");
  ASSERT_TRUE(chords.ok()) << chords.status().message();
  std::vector<KeyChord> want = {
      {"l"}, {"s"}, {"spc"}, {"minus"}, {"l"}, {"spc"}, {"slash"}, {"shift", "a"}, {"shift", "minus"}, {"b"}, {"ret"}};
  EXPECT_EQ(*chords, want);
  EXPECT_EQ((*TextToKeyChords("Zz~\t"))[0], (KeyChord{"shift", "z"}));
  EXPECT_EQ((*TextToKeyChords("~"))[0], (KeyChord{"shift", "grave_accent"}));
}

TEST(Keys, WhatAUsKeyboardCannotTypeIsRefused) {
  auto st = TextToKeyChords("caf\xc3\xa9").status();
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("0xc3 at position 4"), std::string::npos) << st.message();
  EXPECT_FALSE(TextToKeyChords(std::string(kMaxTypedText + 1, 'a')).ok());
  EXPECT_TRUE(TextToKeyChords(std::string(kMaxTypedText, 'a')).ok());
}

TEST(Keys, ChordsNameQemuKeys) {
  EXPECT_EQ(*ParseKeyChord("ctrl-alt-delete"), (KeyChord{"ctrl", "alt", "delete"}));
  EXPECT_EQ(*ParseKeyChord("ctrl-alt-del"), (KeyChord{"ctrl", "alt", "delete"}));
  EXPECT_EQ(*ParseKeyChord("alt-f2"), (KeyChord{"alt", "f2"}));
  auto bad = ParseKeyChord("ctrl-alt-deleet");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("unknown key 'deleet'"), std::string::npos);
  EXPECT_FALSE(ParseKeyChord("").ok());
  EXPECT_FALSE(ParseKeyChord("ctrl--alt").ok());
}

}  // namespace
}  // namespace pampa
