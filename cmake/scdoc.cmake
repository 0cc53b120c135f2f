# Render the scdoc source IN into the man page OUT, gzip'd (OUT.gz, as
# Debian installs man pages). Run by man/CMakeLists.txt: cmake
# -DSCDOC=... -DGZIP=... -DIN=... -DOUT=... -P scdoc.cmake
execute_process(COMMAND ${SCDOC} INPUT_FILE ${IN} OUTPUT_FILE ${OUT}
                ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  file(REMOVE ${OUT})
  message(FATAL_ERROR "scdoc ${IN}: ${err}")
endif()
# -n: no name or time in the header, so the same page gives the same bytes.
execute_process(COMMAND ${GZIP} -9 -n -c ${OUT} OUTPUT_FILE ${OUT}.gz
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  file(REMOVE ${OUT}.gz)
  message(FATAL_ERROR "gzip ${OUT} failed")
endif()
