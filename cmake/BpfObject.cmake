# bpf_object(NAME SOURCE DEPENDS...): clang -target bpf -> NAME.bpf.o -> bpftool gen skeleton -> NAME.skel.h,
# exposed as the interface target NAME_skel (include the generated dir).
find_program(BPF_CLANG NAMES clang-14 clang REQUIRED)
find_program(BPFTOOL NAMES bpftool PATHS /usr/sbin /usr/local/sbin REQUIRED)

function(bpf_object NAME SOURCE)
  set(out_dir ${CMAKE_BINARY_DIR}/bpf)
  set(obj ${out_dir}/${NAME}.bpf.o)
  set(skel ${out_dir}/${NAME}.skel.h)
  file(GLOB bpf_headers ${CMAKE_SOURCE_DIR}/bpf/include/meshlet/*.h ${CMAKE_SOURCE_DIR}/bpf/lib/*.h)
  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${out_dir}
    COMMAND ${BPF_CLANG} -g -O2 -target bpf -D__TARGET_ARCH_x86 -Wall -Werror
            -I${CMAKE_SOURCE_DIR}/bpf/include -I${CMAKE_SOURCE_DIR}/bpf -I/usr/include/x86_64-linux-gnu
            -c ${CMAKE_CURRENT_SOURCE_DIR}/${SOURCE} -o ${obj}
    DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/${SOURCE} ${bpf_headers}
    COMMENT "BPF ${NAME}")
  add_custom_command(
    OUTPUT ${skel}
    COMMAND ${BPFTOOL} gen skeleton ${obj} name ${NAME}_bpf > ${skel}
    DEPENDS ${obj}
    COMMENT "skeleton ${NAME}")
  add_custom_target(${NAME}_skel_gen DEPENDS ${skel})
  add_library(${NAME}_skel INTERFACE)
  add_dependencies(${NAME}_skel ${NAME}_skel_gen)
  target_include_directories(${NAME}_skel INTERFACE ${out_dir})
endfunction()
