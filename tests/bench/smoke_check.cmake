# Runs tc-bench against a spawned tcbroker with tiny numbers and checks, independently of
# tc-bench's own verdict, that its output is one well-formed JSON object whose counts add up:
# every message committed and delivered to every other occupant.
#   cmake -DTC_BENCH=... -DTCBROKER=... -P smoke_check.cmake
set(rooms 2)
set(occupants 3)
set(senders 1)
set(messages 20)

execute_process(
  COMMAND ${TC_BENCH} --spawn --broker ${TCBROKER} --store sqlite
          --rooms ${rooms} --occupants ${occupants} --senders ${senders}
          --messages ${messages} --window 2 --json
  RESULT_VARIABLE status
  OUTPUT_VARIABLE out
  ERROR_VARIABLE err
  TIMEOUT 240)
message(STATUS "tc-bench output: ${out}")
if(NOT status EQUAL 0)
  message(FATAL_ERROR "tc-bench exited with '${status}'\n${err}")
endif()

string(JSON ok ERROR_VARIABLE json_error GET "${out}" ok)
if(json_error)
  message(FATAL_ERROR "tc-bench printed malformed JSON (${json_error}):\n${out}")
endif()

function(expect_equal path expected)
  string(REPLACE "." ";" keys "${path}")
  string(JSON value ERROR_VARIABLE json_error GET "${out}" ${keys})
  if(json_error)
    message(FATAL_ERROR "no ${path} in the report: ${json_error}")
  endif()
  if(NOT value STREQUAL "${expected}")
    message(FATAL_ERROR "${path} is ${value}, expected ${expected}")
  endif()
endfunction()

math(EXPR sent "${rooms} * ${senders} * ${messages}")
math(EXPR delivered "${sent} * (${occupants} - 1)")
expect_equal(ok ON)
expect_equal(setup.failed 0)
expect_equal(messages.sent ${sent})
expect_equal(messages.committed ${sent})
expect_equal(messages.unacknowledged 0)
expect_equal(deliveries.expected ${delivered})
expect_equal(deliveries.delivered ${delivered})
expect_equal(deliveries.missing 0)
expect_equal(latency_ms.commit.count ${sent})
expect_equal(latency_ms.delivery.count ${delivered})
expect_equal(broker.exit_status 0)
