# cmake -DPRINTER=... -DTEMPLATE=... -DOUT=... -DVERSION=... -P man.cmake
# Writes the man page: TEMPLATE with @PM_MAN_OPTIONS@ replaced by the option
# list PRINTER prints (the README's list, as troff), @PM_VERSION@ by VERSION.
execute_process(COMMAND ${PRINTER} OUTPUT_VARIABLE md RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR md STREQUAL "")
  message(FATAL_ERROR "man.cmake: ${PRINTER} failed (${rc})")
endif()
string(REPLACE "\\" "\\e" md "${md}")
string(REPLACE ";" "<semicolon>" md "${md}")   # a list would split there
string(REGEX MATCHALL "[^\n]+" lines "${md}")
set(PM_MAN_OPTIONS "")
foreach(line IN LISTS lines)
  if(NOT line MATCHES "^- `([^`]+)`( \\(default [^)]*\\))?: (.*)$")
    message(FATAL_ERROR "man.cmake: cannot read the option line: ${line}")
  endif()
  set(var "${CMAKE_MATCH_1}")
  set(def "${CMAKE_MATCH_2}")
  set(doc "${CMAKE_MATCH_3}")
  string(REPLACE "-" "\\-" var "${var}")
  string(APPEND PM_MAN_OPTIONS ".TP\n\\fB${var}\\fR${def}\n\\&${doc}\n")
endforeach()
string(REPLACE "<semicolon>" ";" PM_MAN_OPTIONS "${PM_MAN_OPTIONS}")
set(PM_VERSION "${VERSION}")
configure_file(${TEMPLATE} ${OUT} @ONLY)
