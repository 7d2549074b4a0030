# A few helpers keep every CMakeLists.txt a list of names.
#
#   cp_library(NAME name SRCS a.cc b.cc DEPS dep1 dep2)
#   cp_test(NAME name SRCS a_test.cc DEPS dep1 [LABELS l] [TIMEOUT s] [ARGS ...])
#   cp_binary(NAME name SRCS main.cc DEPS dep1)
#   cp_proto_library(NAME name PROTOS a.proto b.proto [GRPC] DEPS dep1)
#
# cp_proto_library: PROTOS are paths under ${CMAKE_SOURCE_DIR}/proto (the one
# import root; `import "etcd/mvccpb/kv.proto";` resolves there). Generated code
# goes to ${CMAKE_BINARY_DIR}/proto and is included the same way:
# #include "etcd/etcdserverpb/rpc.pb.h" (and rpc.grpc.pb.h with GRPC). DEPS are
# other proto libraries whose .proto files these import.

function(cp_library)
  cmake_parse_arguments(ARG "" "NAME" "SRCS;DEPS" ${ARGN})
  add_library(${ARG_NAME} STATIC ${ARG_SRCS})
  target_link_libraries(${ARG_NAME} PUBLIC ${ARG_DEPS})
endfunction()

function(cp_binary)
  cmake_parse_arguments(ARG "" "NAME" "SRCS;DEPS" ${ARGN})
  add_executable(${ARG_NAME} ${ARG_SRCS})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS})
endfunction()

function(cp_test)
  cmake_parse_arguments(ARG "" "NAME;TIMEOUT" "SRCS;DEPS;LABELS;ARGS" ${ARGN})
  add_executable(${ARG_NAME} ${ARG_SRCS})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
  add_test(NAME ${ARG_NAME} COMMAND ${ARG_NAME} ${ARG_ARGS})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  set_tests_properties(${ARG_NAME} PROPERTIES TIMEOUT ${ARG_TIMEOUT})
  if(ARG_LABELS)
    set_tests_properties(${ARG_NAME} PROPERTIES LABELS "${ARG_LABELS}")
  endif()
endfunction()

function(cp_proto_library)
  cmake_parse_arguments(ARG "GRPC" "NAME" "PROTOS;DEPS" ${ARGN})
  set(proto_root ${CMAKE_SOURCE_DIR}/proto)
  set(out_dir ${CMAKE_BINARY_DIR}/proto)
  set(plugin_args)
  set(tools protobuf::protoc)
  if(ARG_GRPC)
    set(plugin_args --grpc_out=${out_dir}
        --plugin=protoc-gen-grpc=$<TARGET_FILE:gRPC::grpc_cpp_plugin>)
    list(APPEND tools gRPC::grpc_cpp_plugin)
  endif()
  # Every file is regenerated when any of the library's protos changes: the
  # code generated for one depends on the messages it imports.
  set(all_protos)
  foreach(proto ${ARG_PROTOS})
    list(APPEND all_protos ${proto_root}/${proto})
  endforeach()
  set(srcs)
  foreach(proto ${ARG_PROTOS})
    string(REGEX REPLACE "\\.proto$" "" stem ${proto})
    set(outputs ${out_dir}/${stem}.pb.cc ${out_dir}/${stem}.pb.h)
    if(ARG_GRPC)
      list(APPEND outputs ${out_dir}/${stem}.grpc.pb.cc ${out_dir}/${stem}.grpc.pb.h)
    endif()
    add_custom_command(
      OUTPUT ${outputs}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${out_dir}
      COMMAND protobuf::protoc --proto_path=${proto_root} --cpp_out=${out_dir}
              ${plugin_args} ${proto_root}/${proto}
      DEPENDS ${all_protos} ${tools}
      COMMENT "protoc ${proto}"
      VERBATIM)
    list(FILTER outputs INCLUDE REGEX "\\.cc$")
    list(APPEND srcs ${outputs})
  endforeach()
  add_library(${ARG_NAME} STATIC ${srcs})
  target_include_directories(${ARG_NAME} PUBLIC ${out_dir})
  target_link_libraries(${ARG_NAME} PUBLIC ${ARG_DEPS} protobuf::libprotobuf)
  if(ARG_GRPC)
    target_link_libraries(${ARG_NAME} PUBLIC gRPC::grpc++)
  endif()
endfunction()
