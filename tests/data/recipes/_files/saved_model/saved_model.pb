placeholder saved_model.pb
