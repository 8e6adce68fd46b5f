# Every external dependency, from Debian 12 packages (see scripts/debian-packages.txt).
find_package(Threads REQUIRED)
find_package(absl CONFIG REQUIRED)
find_package(Eigen3 3.4 REQUIRED NO_MODULE)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(CLI11 CONFIG REQUIRED)
find_package(CURL REQUIRED)
find_package(OpenSSL REQUIRED)
find_package(SQLite3 REQUIRED)

set(BLA_VENDOR OpenBLAS)
find_package(BLAS REQUIRED)
find_package(LAPACK REQUIRED)
find_path(LAPACKE_INCLUDE_DIR lapacke.h PATH_SUFFIXES openblas REQUIRED)
find_library(LAPACKE_LIBRARY lapacke REQUIRED)

# One target for "dense linear algebra": Eigen routed to OpenBLAS for products,
# plus LAPACKE for factorisations called directly.
add_library(caldera_linalg INTERFACE)
add_library(caldera::linalg ALIAS caldera_linalg)
target_link_libraries(caldera_linalg INTERFACE Eigen3::Eigen ${LAPACKE_LIBRARY}
                      ${LAPACK_LIBRARIES} ${BLAS_LIBRARIES})
target_include_directories(caldera_linalg SYSTEM INTERFACE ${LAPACKE_INCLUDE_DIR})
target_compile_definitions(caldera_linalg INTERFACE EIGEN_USE_BLAS EIGEN_NO_DEBUG)

if(CALDERA_BUILD_SERVICE)
  find_package(Protobuf CONFIG QUIET)
  if(NOT Protobuf_FOUND)
    find_package(Protobuf REQUIRED)
  endif()
  find_package(gRPC CONFIG REQUIRED)
  find_package(prometheus-cpp CONFIG REQUIRED)
endif()

if(CALDERA_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
