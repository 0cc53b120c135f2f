# Turn the file IN into a C source OUT defining defn_default_yaml[] and
# defn_default_yaml_len (the text, NUL-terminated; the length without it).
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" hexlen)
math(EXPR len "${hexlen} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" bytes "${bytes}")
file(WRITE ${OUT} "/* Generated from ${IN} by cmake/embed.cmake: do not edit. */\n"
  "#include <stddef.h>\n"
  "extern const char defn_default_yaml[];\n"
  "extern const size_t defn_default_yaml_len;\n"
  "const char defn_default_yaml[] = {\n${bytes}0x00};\n"
  "const size_t defn_default_yaml_len = ${len};\n")
