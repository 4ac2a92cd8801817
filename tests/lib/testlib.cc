// shared test helpers live here
