# Turn the file IN into a C source OUT defining SYMBOL[] and SYMBOL_len
# (the bytes, NUL-terminated; the length without the NUL). SYMBOL defaults
# to defn_default_yaml (handlers/default.yaml).
if(NOT DEFINED SYMBOL)
  set(SYMBOL defn_default_yaml)
endif()
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" hexlen)
math(EXPR len "${hexlen} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" bytes "${bytes}")
file(WRITE ${OUT} "/* Generated from ${IN} by cmake/embed.cmake: do not edit. */\n"
  "#include <stddef.h>\n"
  "extern const char ${SYMBOL}[];\n"
  "extern const size_t ${SYMBOL}_len;\n"
  "const char ${SYMBOL}[] = {\n${bytes}0x00};\n"
  "const size_t ${SYMBOL}_len = ${len};\n")
